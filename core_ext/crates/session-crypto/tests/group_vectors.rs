//! subaccount.json and group_signatures.json: member auth data, subaccount request signatures,
//! the storage server's check, and admin request signatures by the group key.

mod common;

use base64::Engine;
use common::{kind, s};
use session_crypto::keys::{self, SessionKeys};
use session_crypto::subaccount;

fn b64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64")
}

fn seed(c: &serde_json::Value, k: &str) -> [u8; 32] {
    hex::decode(s(c, k))
        .expect("hex")
        .try_into()
        .expect("32 bytes")
}

#[test]
fn subaccount_sign_vectors() {
    for c in kind("subaccount", "subaccount_sign") {
        let group_seed = seed(&c, "group_seed");
        let (group_pk, _) = keys::ed25519_keypair_from_seed(&group_seed);
        assert_eq!(hex::encode(group_pk), s(&c, "group_pk"));
        let member = SessionKeys::from_seed(&seed(&c, "member_ed25519_seed")).expect("member");
        assert_eq!(member.session_id(), s(&c, "member_session_id"));
        let member_x = keys::parse_session_id(s(&c, "member_session_id")).expect("id");
        let flags = u8::try_from(c["token_flags"].as_u64().expect("flags")).expect("u8");
        let write = flags & subaccount::FLAG_WRITE != 0;
        let delete = flags & subaccount::FLAG_DELETE != 0;
        let auth = subaccount::make_auth_data(&group_seed, &member_x, write, delete).expect("auth");
        assert_eq!(
            hex::encode(auth),
            s(&c, "member_auth_data"),
            "{}",
            c["name"]
        );
        subaccount::verify_auth_data(&group_pk, &member, &auth, write, delete)
            .expect("valid grant");
        let text = s(&c, "signed_text_utf8");
        assert_eq!(
            text,
            format!("{}{}{}", s(&c, "method"), c["namespace"], c["timestamp_ms"])
        );
        let signed = subaccount::sign(&member, &auth, text.as_bytes()).expect("sign");
        assert_eq!(hex::encode(signed.token), s(&c, "subaccount"));
        assert_eq!(signed.token.to_vec(), b64(s(&c, "subaccount_b64")));
        assert_eq!(
            signed.subaccount_sig.to_vec(),
            b64(s(&c, "subaccount_sig_b64"))
        );
        assert_eq!(signed.signature.to_vec(), b64(s(&c, "signature_b64")));
        subaccount::verify_request(
            &group_pk,
            &b64(s(&c, "subaccount_b64")),
            &b64(s(&c, "subaccount_sig_b64")),
            &b64(s(&c, "signature_b64")),
            text.as_bytes(),
            write,
            delete,
        )
        .expect("the storage server accepts the upstream signature");
        assert!(subaccount::verify_request(
            &group_pk,
            &signed.token,
            &signed.subaccount_sig,
            &signed.signature,
            b"retrieve9991693340111001",
            false,
            false
        )
        .is_err());
    }
}

#[test]
fn group_key_and_request_signatures() {
    for c in kind("group_signatures", "seed_keys")
        .into_iter()
        .chain(kind("subaccount", "seed_keys"))
    {
        let sd = seed(&c, "ed25519_seed");
        if let Some(id) = c["account_id"].as_str() {
            let (pk, _) = keys::ed25519_keypair_from_seed(&sd);
            assert_eq!(format!("03{}", hex::encode(pk)), id);
        }
        if let Some(id) = c["session_id"].as_str() {
            assert_eq!(SessionKeys::from_seed(&sd).expect("keys").session_id(), id);
        }
    }
    for c in kind("group_signatures", "sign") {
        let sd = seed(&c, "ed25519_seed");
        let text = s(&c, "signed_text_utf8");
        assert_eq!(
            text,
            format!("{}{}{}", s(&c, "method"), c["namespace"], c["timestamp_ms"])
        );
        let sig = keys::sign_with_seed(&sd, text.as_bytes());
        assert_eq!(sig.to_vec(), b64(s(&c, "signature_b64")), "{}", c["name"]);
    }
}
