from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WebSocketRequestMessage(_message.Message):
    __slots__ = ("verb", "path", "body", "headers", "id")
    VERB_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    verb: str
    path: str
    body: bytes
    headers: _containers.RepeatedScalarFieldContainer[str]
    id: int
    def __init__(self, verb: _Optional[str] = ..., path: _Optional[str] = ..., body: _Optional[bytes] = ..., headers: _Optional[_Iterable[str]] = ..., id: _Optional[int] = ...) -> None: ...

class WebSocketMessage(_message.Message):
    __slots__ = ("type", "request")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        UNKNOWN: _ClassVar[WebSocketMessage.Type]
        REQUEST: _ClassVar[WebSocketMessage.Type]
        RESPONSE: _ClassVar[WebSocketMessage.Type]
    UNKNOWN: WebSocketMessage.Type
    REQUEST: WebSocketMessage.Type
    RESPONSE: WebSocketMessage.Type
    TYPE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    type: WebSocketMessage.Type
    request: WebSocketRequestMessage
    def __init__(self, type: _Optional[_Union[WebSocketMessage.Type, str]] = ..., request: _Optional[_Union[WebSocketRequestMessage, _Mapping]] = ...) -> None: ...

class Envelope(_message.Message):
    __slots__ = ("type", "source", "timestamp", "sourceDevice", "content", "serverTimestamp", "proSig")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        SESSION_MESSAGE: _ClassVar[Envelope.Type]
        CLOSED_GROUP_MESSAGE: _ClassVar[Envelope.Type]
    SESSION_MESSAGE: Envelope.Type
    CLOSED_GROUP_MESSAGE: Envelope.Type
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    SOURCEDEVICE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    SERVERTIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    PROSIG_FIELD_NUMBER: _ClassVar[int]
    type: Envelope.Type
    source: str
    timestamp: int
    sourceDevice: int
    content: bytes
    serverTimestamp: int
    proSig: bytes
    def __init__(self, type: _Optional[_Union[Envelope.Type, str]] = ..., source: _Optional[str] = ..., timestamp: _Optional[int] = ..., sourceDevice: _Optional[int] = ..., content: _Optional[bytes] = ..., serverTimestamp: _Optional[int] = ..., proSig: _Optional[bytes] = ...) -> None: ...

class TypingMessage(_message.Message):
    __slots__ = ("timestamp", "action")
    class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STARTED: _ClassVar[TypingMessage.Action]
        STOPPED: _ClassVar[TypingMessage.Action]
    STARTED: TypingMessage.Action
    STOPPED: TypingMessage.Action
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    timestamp: int
    action: TypingMessage.Action
    def __init__(self, timestamp: _Optional[int] = ..., action: _Optional[_Union[TypingMessage.Action, str]] = ...) -> None: ...

class UnsendRequest(_message.Message):
    __slots__ = ("timestamp", "author")
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    timestamp: int
    author: str
    def __init__(self, timestamp: _Optional[int] = ..., author: _Optional[str] = ...) -> None: ...

class LokiProfile(_message.Message):
    __slots__ = ("displayName", "profilePicture", "lastProfileUpdateSeconds")
    DISPLAYNAME_FIELD_NUMBER: _ClassVar[int]
    PROFILEPICTURE_FIELD_NUMBER: _ClassVar[int]
    LASTPROFILEUPDATESECONDS_FIELD_NUMBER: _ClassVar[int]
    displayName: str
    profilePicture: str
    lastProfileUpdateSeconds: int
    def __init__(self, displayName: _Optional[str] = ..., profilePicture: _Optional[str] = ..., lastProfileUpdateSeconds: _Optional[int] = ...) -> None: ...

class MessageRequestResponse(_message.Message):
    __slots__ = ("isApproved", "profileKey", "profile")
    ISAPPROVED_FIELD_NUMBER: _ClassVar[int]
    PROFILEKEY_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    isApproved: bool
    profileKey: bytes
    profile: LokiProfile
    def __init__(self, isApproved: _Optional[bool] = ..., profileKey: _Optional[bytes] = ..., profile: _Optional[_Union[LokiProfile, _Mapping]] = ...) -> None: ...

class SharedConfigMessage(_message.Message):
    __slots__ = ("kind", "seqno", "data")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        USER_PROFILE: _ClassVar[SharedConfigMessage.Kind]
        CONTACTS: _ClassVar[SharedConfigMessage.Kind]
        CONVO_INFO_VOLATILE: _ClassVar[SharedConfigMessage.Kind]
        USER_GROUPS: _ClassVar[SharedConfigMessage.Kind]
    USER_PROFILE: SharedConfigMessage.Kind
    CONTACTS: SharedConfigMessage.Kind
    CONVO_INFO_VOLATILE: SharedConfigMessage.Kind
    USER_GROUPS: SharedConfigMessage.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    SEQNO_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    kind: SharedConfigMessage.Kind
    seqno: int
    data: bytes
    def __init__(self, kind: _Optional[_Union[SharedConfigMessage.Kind, str]] = ..., seqno: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class ReceiptMessage(_message.Message):
    __slots__ = ("type", "timestamp")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        DELIVERY: _ClassVar[ReceiptMessage.Type]
        READ: _ClassVar[ReceiptMessage.Type]
    DELIVERY: ReceiptMessage.Type
    READ: ReceiptMessage.Type
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    type: ReceiptMessage.Type
    timestamp: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, type: _Optional[_Union[ReceiptMessage.Type, str]] = ..., timestamp: _Optional[_Iterable[int]] = ...) -> None: ...

class DataExtractionNotification(_message.Message):
    __slots__ = ("type", "timestamp")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        SCREENSHOT: _ClassVar[DataExtractionNotification.Type]
        MEDIA_SAVED: _ClassVar[DataExtractionNotification.Type]
    SCREENSHOT: DataExtractionNotification.Type
    MEDIA_SAVED: DataExtractionNotification.Type
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    type: DataExtractionNotification.Type
    timestamp: int
    def __init__(self, type: _Optional[_Union[DataExtractionNotification.Type, str]] = ..., timestamp: _Optional[int] = ...) -> None: ...

class AttachmentPointer(_message.Message):
    __slots__ = ("deprecated_id", "contentType", "key", "size", "digest", "fileName", "flags", "width", "height", "caption", "url")
    class Flags(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        VOICE_MESSAGE: _ClassVar[AttachmentPointer.Flags]
    VOICE_MESSAGE: AttachmentPointer.Flags
    DEPRECATED_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENTTYPE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    CAPTION_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    deprecated_id: int
    contentType: str
    key: bytes
    size: int
    digest: bytes
    fileName: str
    flags: int
    width: int
    height: int
    caption: str
    url: str
    def __init__(self, deprecated_id: _Optional[int] = ..., contentType: _Optional[str] = ..., key: _Optional[bytes] = ..., size: _Optional[int] = ..., digest: _Optional[bytes] = ..., fileName: _Optional[str] = ..., flags: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., caption: _Optional[str] = ..., url: _Optional[str] = ...) -> None: ...

class DataMessage(_message.Message):
    __slots__ = ("body", "attachments", "flags", "profileKey", "timestamp", "quote", "preview", "reaction", "profile", "openGroupInvitation", "syncTarget", "blocksCommunityMessageRequests", "groupUpdateMessage")
    class Flags(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        EXPIRATION_TIMER_UPDATE: _ClassVar[DataMessage.Flags]
    EXPIRATION_TIMER_UPDATE: DataMessage.Flags
    class Quote(_message.Message):
        __slots__ = ("id", "author", "text")
        ID_FIELD_NUMBER: _ClassVar[int]
        AUTHOR_FIELD_NUMBER: _ClassVar[int]
        TEXT_FIELD_NUMBER: _ClassVar[int]
        id: int
        author: str
        text: str
        def __init__(self, id: _Optional[int] = ..., author: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...
    class Preview(_message.Message):
        __slots__ = ("url", "title", "image")
        URL_FIELD_NUMBER: _ClassVar[int]
        TITLE_FIELD_NUMBER: _ClassVar[int]
        IMAGE_FIELD_NUMBER: _ClassVar[int]
        url: str
        title: str
        image: AttachmentPointer
        def __init__(self, url: _Optional[str] = ..., title: _Optional[str] = ..., image: _Optional[_Union[AttachmentPointer, _Mapping]] = ...) -> None: ...
    class Reaction(_message.Message):
        __slots__ = ("id", "author", "emoji", "action")
        class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
            __slots__ = ()
            REACT: _ClassVar[DataMessage.Reaction.Action]
            REMOVE: _ClassVar[DataMessage.Reaction.Action]
        REACT: DataMessage.Reaction.Action
        REMOVE: DataMessage.Reaction.Action
        ID_FIELD_NUMBER: _ClassVar[int]
        AUTHOR_FIELD_NUMBER: _ClassVar[int]
        EMOJI_FIELD_NUMBER: _ClassVar[int]
        ACTION_FIELD_NUMBER: _ClassVar[int]
        id: int
        author: str
        emoji: str
        action: DataMessage.Reaction.Action
        def __init__(self, id: _Optional[int] = ..., author: _Optional[str] = ..., emoji: _Optional[str] = ..., action: _Optional[_Union[DataMessage.Reaction.Action, str]] = ...) -> None: ...
    class OpenGroupInvitation(_message.Message):
        __slots__ = ("url", "name")
        URL_FIELD_NUMBER: _ClassVar[int]
        NAME_FIELD_NUMBER: _ClassVar[int]
        url: str
        name: str
        def __init__(self, url: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...
    BODY_FIELD_NUMBER: _ClassVar[int]
    ATTACHMENTS_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    PROFILEKEY_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    QUOTE_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    REACTION_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    OPENGROUPINVITATION_FIELD_NUMBER: _ClassVar[int]
    SYNCTARGET_FIELD_NUMBER: _ClassVar[int]
    BLOCKSCOMMUNITYMESSAGEREQUESTS_FIELD_NUMBER: _ClassVar[int]
    GROUPUPDATEMESSAGE_FIELD_NUMBER: _ClassVar[int]
    body: str
    attachments: _containers.RepeatedCompositeFieldContainer[AttachmentPointer]
    flags: int
    profileKey: bytes
    timestamp: int
    quote: DataMessage.Quote
    preview: _containers.RepeatedCompositeFieldContainer[DataMessage.Preview]
    reaction: DataMessage.Reaction
    profile: LokiProfile
    openGroupInvitation: DataMessage.OpenGroupInvitation
    syncTarget: str
    blocksCommunityMessageRequests: bool
    groupUpdateMessage: GroupUpdateMessage
    def __init__(self, body: _Optional[str] = ..., attachments: _Optional[_Iterable[_Union[AttachmentPointer, _Mapping]]] = ..., flags: _Optional[int] = ..., profileKey: _Optional[bytes] = ..., timestamp: _Optional[int] = ..., quote: _Optional[_Union[DataMessage.Quote, _Mapping]] = ..., preview: _Optional[_Iterable[_Union[DataMessage.Preview, _Mapping]]] = ..., reaction: _Optional[_Union[DataMessage.Reaction, _Mapping]] = ..., profile: _Optional[_Union[LokiProfile, _Mapping]] = ..., openGroupInvitation: _Optional[_Union[DataMessage.OpenGroupInvitation, _Mapping]] = ..., syncTarget: _Optional[str] = ..., blocksCommunityMessageRequests: _Optional[bool] = ..., groupUpdateMessage: _Optional[_Union[GroupUpdateMessage, _Mapping]] = ...) -> None: ...

class GroupUpdateMessage(_message.Message):
    __slots__ = ("inviteMessage", "infoChangeMessage", "memberChangeMessage", "promoteMessage", "memberLeftMessage", "inviteResponse", "deleteMemberContent", "memberLeftNotificationMessage")
    INVITEMESSAGE_FIELD_NUMBER: _ClassVar[int]
    INFOCHANGEMESSAGE_FIELD_NUMBER: _ClassVar[int]
    MEMBERCHANGEMESSAGE_FIELD_NUMBER: _ClassVar[int]
    PROMOTEMESSAGE_FIELD_NUMBER: _ClassVar[int]
    MEMBERLEFTMESSAGE_FIELD_NUMBER: _ClassVar[int]
    INVITERESPONSE_FIELD_NUMBER: _ClassVar[int]
    DELETEMEMBERCONTENT_FIELD_NUMBER: _ClassVar[int]
    MEMBERLEFTNOTIFICATIONMESSAGE_FIELD_NUMBER: _ClassVar[int]
    inviteMessage: GroupUpdateInviteMessage
    infoChangeMessage: GroupUpdateInfoChangeMessage
    memberChangeMessage: GroupUpdateMemberChangeMessage
    promoteMessage: GroupUpdatePromoteMessage
    memberLeftMessage: GroupUpdateMemberLeftMessage
    inviteResponse: GroupUpdateInviteResponseMessage
    deleteMemberContent: GroupUpdateDeleteMemberContentMessage
    memberLeftNotificationMessage: GroupUpdateMemberLeftNotificationMessage
    def __init__(self, inviteMessage: _Optional[_Union[GroupUpdateInviteMessage, _Mapping]] = ..., infoChangeMessage: _Optional[_Union[GroupUpdateInfoChangeMessage, _Mapping]] = ..., memberChangeMessage: _Optional[_Union[GroupUpdateMemberChangeMessage, _Mapping]] = ..., promoteMessage: _Optional[_Union[GroupUpdatePromoteMessage, _Mapping]] = ..., memberLeftMessage: _Optional[_Union[GroupUpdateMemberLeftMessage, _Mapping]] = ..., inviteResponse: _Optional[_Union[GroupUpdateInviteResponseMessage, _Mapping]] = ..., deleteMemberContent: _Optional[_Union[GroupUpdateDeleteMemberContentMessage, _Mapping]] = ..., memberLeftNotificationMessage: _Optional[_Union[GroupUpdateMemberLeftNotificationMessage, _Mapping]] = ...) -> None: ...

class GroupUpdateInviteMessage(_message.Message):
    __slots__ = ("groupSessionId", "name", "memberAuthData", "adminSignature")
    GROUPSESSIONID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MEMBERAUTHDATA_FIELD_NUMBER: _ClassVar[int]
    ADMINSIGNATURE_FIELD_NUMBER: _ClassVar[int]
    groupSessionId: str
    name: str
    memberAuthData: bytes
    adminSignature: bytes
    def __init__(self, groupSessionId: _Optional[str] = ..., name: _Optional[str] = ..., memberAuthData: _Optional[bytes] = ..., adminSignature: _Optional[bytes] = ...) -> None: ...

class GroupUpdatePromoteMessage(_message.Message):
    __slots__ = ("groupIdentitySeed", "name")
    GROUPIDENTITYSEED_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    groupIdentitySeed: bytes
    name: str
    def __init__(self, groupIdentitySeed: _Optional[bytes] = ..., name: _Optional[str] = ...) -> None: ...

class GroupUpdateInfoChangeMessage(_message.Message):
    __slots__ = ("type", "updatedName", "updatedExpiration", "adminSignature")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        NAME: _ClassVar[GroupUpdateInfoChangeMessage.Type]
        AVATAR: _ClassVar[GroupUpdateInfoChangeMessage.Type]
        DISAPPEARING_MESSAGES: _ClassVar[GroupUpdateInfoChangeMessage.Type]
    NAME: GroupUpdateInfoChangeMessage.Type
    AVATAR: GroupUpdateInfoChangeMessage.Type
    DISAPPEARING_MESSAGES: GroupUpdateInfoChangeMessage.Type
    TYPE_FIELD_NUMBER: _ClassVar[int]
    UPDATEDNAME_FIELD_NUMBER: _ClassVar[int]
    UPDATEDEXPIRATION_FIELD_NUMBER: _ClassVar[int]
    ADMINSIGNATURE_FIELD_NUMBER: _ClassVar[int]
    type: GroupUpdateInfoChangeMessage.Type
    updatedName: str
    updatedExpiration: int
    adminSignature: bytes
    def __init__(self, type: _Optional[_Union[GroupUpdateInfoChangeMessage.Type, str]] = ..., updatedName: _Optional[str] = ..., updatedExpiration: _Optional[int] = ..., adminSignature: _Optional[bytes] = ...) -> None: ...

class GroupUpdateMemberChangeMessage(_message.Message):
    __slots__ = ("type", "memberSessionIds", "historyShared", "adminSignature")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ADDED: _ClassVar[GroupUpdateMemberChangeMessage.Type]
        REMOVED: _ClassVar[GroupUpdateMemberChangeMessage.Type]
        PROMOTED: _ClassVar[GroupUpdateMemberChangeMessage.Type]
    ADDED: GroupUpdateMemberChangeMessage.Type
    REMOVED: GroupUpdateMemberChangeMessage.Type
    PROMOTED: GroupUpdateMemberChangeMessage.Type
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MEMBERSESSIONIDS_FIELD_NUMBER: _ClassVar[int]
    HISTORYSHARED_FIELD_NUMBER: _ClassVar[int]
    ADMINSIGNATURE_FIELD_NUMBER: _ClassVar[int]
    type: GroupUpdateMemberChangeMessage.Type
    memberSessionIds: _containers.RepeatedScalarFieldContainer[str]
    historyShared: bool
    adminSignature: bytes
    def __init__(self, type: _Optional[_Union[GroupUpdateMemberChangeMessage.Type, str]] = ..., memberSessionIds: _Optional[_Iterable[str]] = ..., historyShared: _Optional[bool] = ..., adminSignature: _Optional[bytes] = ...) -> None: ...

class GroupUpdateMemberLeftMessage(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GroupUpdateMemberLeftNotificationMessage(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GroupUpdateInviteResponseMessage(_message.Message):
    __slots__ = ("isApproved",)
    ISAPPROVED_FIELD_NUMBER: _ClassVar[int]
    isApproved: bool
    def __init__(self, isApproved: _Optional[bool] = ...) -> None: ...

class GroupUpdateDeleteMemberContentMessage(_message.Message):
    __slots__ = ("memberSessionIds", "messageHashes", "adminSignature")
    MEMBERSESSIONIDS_FIELD_NUMBER: _ClassVar[int]
    MESSAGEHASHES_FIELD_NUMBER: _ClassVar[int]
    ADMINSIGNATURE_FIELD_NUMBER: _ClassVar[int]
    memberSessionIds: _containers.RepeatedScalarFieldContainer[str]
    messageHashes: _containers.RepeatedScalarFieldContainer[str]
    adminSignature: bytes
    def __init__(self, memberSessionIds: _Optional[_Iterable[str]] = ..., messageHashes: _Optional[_Iterable[str]] = ..., adminSignature: _Optional[bytes] = ...) -> None: ...

class Content(_message.Message):
    __slots__ = ("dataMessage", "receiptMessage", "typingMessage", "dataExtractionNotification", "unsendRequest", "messageRequestResponse", "sharedConfigMessage", "expirationType", "expirationTimer", "sigTimestamp")
    class ExpirationType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        UNKNOWN: _ClassVar[Content.ExpirationType]
        DELETE_AFTER_READ: _ClassVar[Content.ExpirationType]
        DELETE_AFTER_SEND: _ClassVar[Content.ExpirationType]
    UNKNOWN: Content.ExpirationType
    DELETE_AFTER_READ: Content.ExpirationType
    DELETE_AFTER_SEND: Content.ExpirationType
    DATAMESSAGE_FIELD_NUMBER: _ClassVar[int]
    RECEIPTMESSAGE_FIELD_NUMBER: _ClassVar[int]
    TYPINGMESSAGE_FIELD_NUMBER: _ClassVar[int]
    DATAEXTRACTIONNOTIFICATION_FIELD_NUMBER: _ClassVar[int]
    UNSENDREQUEST_FIELD_NUMBER: _ClassVar[int]
    MESSAGEREQUESTRESPONSE_FIELD_NUMBER: _ClassVar[int]
    SHAREDCONFIGMESSAGE_FIELD_NUMBER: _ClassVar[int]
    EXPIRATIONTYPE_FIELD_NUMBER: _ClassVar[int]
    EXPIRATIONTIMER_FIELD_NUMBER: _ClassVar[int]
    SIGTIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    dataMessage: DataMessage
    receiptMessage: ReceiptMessage
    typingMessage: TypingMessage
    dataExtractionNotification: DataExtractionNotification
    unsendRequest: UnsendRequest
    messageRequestResponse: MessageRequestResponse
    sharedConfigMessage: SharedConfigMessage
    expirationType: Content.ExpirationType
    expirationTimer: int
    sigTimestamp: int
    def __init__(self, dataMessage: _Optional[_Union[DataMessage, _Mapping]] = ..., receiptMessage: _Optional[_Union[ReceiptMessage, _Mapping]] = ..., typingMessage: _Optional[_Union[TypingMessage, _Mapping]] = ..., dataExtractionNotification: _Optional[_Union[DataExtractionNotification, _Mapping]] = ..., unsendRequest: _Optional[_Union[UnsendRequest, _Mapping]] = ..., messageRequestResponse: _Optional[_Union[MessageRequestResponse, _Mapping]] = ..., sharedConfigMessage: _Optional[_Union[SharedConfigMessage, _Mapping]] = ..., expirationType: _Optional[_Union[Content.ExpirationType, str]] = ..., expirationTimer: _Optional[int] = ..., sigTimestamp: _Optional[int] = ...) -> None: ...
