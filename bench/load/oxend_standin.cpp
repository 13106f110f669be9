// A stand-in for oxend (Session's chain daemon) serving one oxen-storage process, for
// `python -m bench.load ... --target oxenss` (bench/load/oxenss.py compiles and runs it; nothing
// of Session's server is in this repository).
//
//   oxend_standin LISTEN SEED_HEX NODES_JSON
//
// LISTEN: the OxenMQ address the server's --oxend-rpc names. SEED_HEX: the Ed25519 seed of the
// node this stand-in serves (its keys are handed to the server). NODES_JSON: a file holding the
// service-node list, every node of the network with its keys, address, ports and swarm id (the
// same file for every stand-in of a network, so every server sees the same swarm).
//
// It answers what oxen-storage v2.6 asks oxend: admin.get_service_node_privkey,
// rpc.get_service_nodes, rpc.get_block_hash, admin.storage_server_ping,
// admin.report_peer_status and sub.block, and pokes subscribers with notify.block every 5 s (the
// server re-reads the node list only then). It prints "ready" once listening.
#include <oxenc/hex.h>
#include <oxenmq/oxenmq.h>
#include <sodium.h>

#include <atomic>
#include <csignal>
#include <fstream>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

using json = nlohmann::json;

namespace {
std::atomic<bool> stopping{false};

std::string to_hex(const unsigned char* p, size_t n) { return oxenc::to_hex(p, p + n); }
}  // namespace

int main(int argc, char** argv) {
    if (argc != 4) {
        std::cerr << "usage: " << argv[0] << " LISTEN SEED_HEX NODES_JSON\n";
        return 2;
    }
    if (sodium_init() < 0) return 1;
    const std::string listen = argv[1];
    const std::string seed = oxenc::from_hex(std::string_view{argv[2]});
    if (seed.size() != 32) {
        std::cerr << "the seed must be 32 bytes of hex\n";
        return 2;
    }
    json nodes;
    try {
        std::ifstream in{argv[3]};
        nodes = json::parse(in);
    } catch (const std::exception& e) {
        std::cerr << "cannot read the node list " << argv[3] << ": " << e.what() << "\n";
        return 2;
    }

    unsigned char pk[32], sk[64], xsk[32];
    crypto_sign_ed25519_seed_keypair(pk, sk, reinterpret_cast<const unsigned char*>(seed.data()));
    crypto_sign_ed25519_sk_to_curve25519(xsk, sk);
    // The server's legacy key is its Ed25519 scalar (as on today's service nodes).
    const json privkeys{{"service_node_privkey", to_hex(xsk, 32)},
                        {"service_node_ed25519_privkey", to_hex(sk, 64)},
                        {"service_node_x25519_privkey", to_hex(xsk, 32)}};
    const uint64_t height = 1000000;
    const std::string block_hash(64, 'a');

    oxenmq::OxenMQ omq{};
    std::mutex subs_mutex;
    std::set<oxenmq::ConnectionID> subs;
    omq.add_category("admin", oxenmq::AuthLevel::none)
            .add_request_command(
                    "get_service_node_privkey",
                    [&](oxenmq::Message& m) { m.send_reply("200", privkeys.dump()); })
            .add_request_command(
                    "storage_server_ping",
                    [&](oxenmq::Message& m) { m.send_reply("200", R"({"status":"OK"})"); })
            .add_request_command("report_peer_status", [&](oxenmq::Message& m) {
                m.send_reply("200", R"({"status":"OK"})");
            });
    omq.add_category("rpc", oxenmq::AuthLevel::none)
            .add_request_command(
                    "get_service_nodes",
                    [&](oxenmq::Message& m) {
                        json req = m.data.empty() ? json::object() : json::parse(m.data[0]);
                        json r{{"height", height},
                               {"block_hash", block_hash},
                               {"hardfork", 19},
                               {"snode_revision", 4}};
                        if (req.value("poll_block_hash", "") == block_hash)
                            r["unchanged"] = true;
                        else
                            r["service_node_states"] = nodes;
                        m.send_reply("200", r.dump());
                    })
            .add_request_command("get_block_hash", [&](oxenmq::Message& m) {
                m.send_reply("200", "\"" + block_hash + "\"");
            });
    omq.add_category("sub", oxenmq::AuthLevel::none)
            .add_request_command("block", [&](oxenmq::Message& m) {
                std::lock_guard lock{subs_mutex};
                m.send_reply(subs.insert(m.conn).second ? "OK" : "ALREADY");
            });
    omq.add_timer(
            [&] {
                std::lock_guard lock{subs_mutex};
                for (auto& c : subs)
                    omq.request(c, "notify.block", [](bool, std::vector<std::string>) {});
            },
            std::chrono::seconds(5));
    omq.listen_plain(listen, [](auto&&, auto&&, auto&&) { return oxenmq::AuthLevel::admin; });
    omq.start();
    std::cout << "ready" << std::endl;
    std::signal(SIGINT, [](int) { stopping = true; });
    std::signal(SIGTERM, [](int) { stopping = true; });
    while (!stopping)
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    return 0;
}
