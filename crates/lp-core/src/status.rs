//! CTAP 2.1 status codes (section 8.2 of the spec). One error type for the
//! protocol layer; every failure below it is mapped to one of these at the edge.

/// A CTAP2 status code. `Ok` is never an error; the others are sent as the
/// first byte of the CBOR response with no payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[repr(u8)]
pub enum CtapError {
    #[error("CTAP1_ERR_INVALID_COMMAND")]
    InvalidCommand = 0x01,
    #[error("CTAP1_ERR_INVALID_PARAMETER")]
    InvalidParameter = 0x02,
    #[error("CTAP1_ERR_INVALID_LENGTH")]
    InvalidLength = 0x03,
    #[error("CTAP1_ERR_INVALID_SEQ")]
    InvalidSeq = 0x04,
    #[error("CTAP1_ERR_TIMEOUT")]
    Timeout = 0x05,
    #[error("CTAP1_ERR_CHANNEL_BUSY")]
    ChannelBusy = 0x06,
    #[error("CTAP1_ERR_LOCK_REQUIRED")]
    LockRequired = 0x0A,
    #[error("CTAP1_ERR_INVALID_CHANNEL")]
    InvalidChannel = 0x0B,
    #[error("CTAP2_ERR_CBOR_UNEXPECTED_TYPE")]
    CborUnexpectedType = 0x11,
    #[error("CTAP2_ERR_INVALID_CBOR")]
    InvalidCbor = 0x12,
    #[error("CTAP2_ERR_MISSING_PARAMETER")]
    MissingParameter = 0x14,
    #[error("CTAP2_ERR_LIMIT_EXCEEDED")]
    LimitExceeded = 0x15,
    #[error("CTAP2_ERR_FP_DATABASE_FULL")]
    FpDatabaseFull = 0x17,
    #[error("CTAP2_ERR_LARGE_BLOB_STORAGE_FULL")]
    LargeBlobStorageFull = 0x18,
    #[error("CTAP2_ERR_CREDENTIAL_EXCLUDED")]
    CredentialExcluded = 0x19,
    #[error("CTAP2_ERR_PROCESSING")]
    Processing = 0x21,
    #[error("CTAP2_ERR_INVALID_CREDENTIAL")]
    InvalidCredential = 0x22,
    #[error("CTAP2_ERR_USER_ACTION_PENDING")]
    UserActionPending = 0x23,
    #[error("CTAP2_ERR_OPERATION_PENDING")]
    OperationPending = 0x24,
    #[error("CTAP2_ERR_NO_OPERATIONS")]
    NoOperations = 0x25,
    #[error("CTAP2_ERR_UNSUPPORTED_ALGORITHM")]
    UnsupportedAlgorithm = 0x26,
    #[error("CTAP2_ERR_OPERATION_DENIED")]
    OperationDenied = 0x27,
    #[error("CTAP2_ERR_KEY_STORE_FULL")]
    KeyStoreFull = 0x28,
    #[error("CTAP2_ERR_UNSUPPORTED_OPTION")]
    UnsupportedOption = 0x2B,
    #[error("CTAP2_ERR_INVALID_OPTION")]
    InvalidOption = 0x2C,
    #[error("CTAP2_ERR_KEEPALIVE_CANCEL")]
    KeepaliveCancel = 0x2D,
    #[error("CTAP2_ERR_NO_CREDENTIALS")]
    NoCredentials = 0x2E,
    #[error("CTAP2_ERR_USER_ACTION_TIMEOUT")]
    UserActionTimeout = 0x2F,
    #[error("CTAP2_ERR_NOT_ALLOWED")]
    NotAllowed = 0x30,
    #[error("CTAP2_ERR_PIN_INVALID")]
    PinInvalid = 0x31,
    #[error("CTAP2_ERR_PIN_BLOCKED")]
    PinBlocked = 0x32,
    #[error("CTAP2_ERR_PIN_AUTH_INVALID")]
    PinAuthInvalid = 0x33,
    #[error("CTAP2_ERR_PIN_AUTH_BLOCKED")]
    PinAuthBlocked = 0x34,
    #[error("CTAP2_ERR_PIN_NOT_SET")]
    PinNotSet = 0x35,
    #[error("CTAP2_ERR_PUAT_REQUIRED")]
    PuatRequired = 0x36,
    #[error("CTAP2_ERR_PIN_POLICY_VIOLATION")]
    PinPolicyViolation = 0x37,
    #[error("CTAP2_ERR_REQUEST_TOO_LARGE")]
    RequestTooLarge = 0x39,
    #[error("CTAP2_ERR_ACTION_TIMEOUT")]
    ActionTimeout = 0x3A,
    #[error("CTAP2_ERR_UP_REQUIRED")]
    UpRequired = 0x3B,
    #[error("CTAP2_ERR_UV_BLOCKED")]
    UvBlocked = 0x3C,
    #[error("CTAP2_ERR_INTEGRITY_FAILURE")]
    IntegrityFailure = 0x3D,
    #[error("CTAP2_ERR_INVALID_SUBCOMMAND")]
    InvalidSubcommand = 0x3E,
    #[error("CTAP2_ERR_UV_INVALID")]
    UvInvalid = 0x3F,
    #[error("CTAP2_ERR_UNAUTHORIZED_PERMISSION")]
    UnauthorizedPermission = 0x40,
    #[error("CTAP1_ERR_OTHER")]
    Other = 0x7F,
}

impl CtapError {
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The error a status byte names, for the platform side (the CLI).
    pub fn from_code(code: u8) -> Option<Self> {
        const ALL: &[CtapError] = &[
            CtapError::InvalidCommand,
            CtapError::InvalidParameter,
            CtapError::InvalidLength,
            CtapError::InvalidSeq,
            CtapError::Timeout,
            CtapError::ChannelBusy,
            CtapError::LockRequired,
            CtapError::InvalidChannel,
            CtapError::CborUnexpectedType,
            CtapError::InvalidCbor,
            CtapError::MissingParameter,
            CtapError::LimitExceeded,
            CtapError::FpDatabaseFull,
            CtapError::LargeBlobStorageFull,
            CtapError::CredentialExcluded,
            CtapError::Processing,
            CtapError::InvalidCredential,
            CtapError::UserActionPending,
            CtapError::OperationPending,
            CtapError::NoOperations,
            CtapError::UnsupportedAlgorithm,
            CtapError::OperationDenied,
            CtapError::KeyStoreFull,
            CtapError::UnsupportedOption,
            CtapError::InvalidOption,
            CtapError::KeepaliveCancel,
            CtapError::NoCredentials,
            CtapError::UserActionTimeout,
            CtapError::NotAllowed,
            CtapError::PinInvalid,
            CtapError::PinBlocked,
            CtapError::PinAuthInvalid,
            CtapError::PinAuthBlocked,
            CtapError::PinNotSet,
            CtapError::PuatRequired,
            CtapError::PinPolicyViolation,
            CtapError::RequestTooLarge,
            CtapError::ActionTimeout,
            CtapError::UpRequired,
            CtapError::UvBlocked,
            CtapError::IntegrityFailure,
            CtapError::InvalidSubcommand,
            CtapError::UvInvalid,
            CtapError::UnauthorizedPermission,
            CtapError::Other,
        ];
        ALL.iter().copied().find(|e| e.code() == code)
    }
}

/// The success status byte.
pub const CTAP2_OK: u8 = 0x00;
