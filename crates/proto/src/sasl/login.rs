//! LOGIN (draft-murchison-sasl-login-00): the server prompts `Username:` then
//! `Password:`, the client answers each with the bare value. Not a standard,
//! but Outlook and many devices know no other mechanism.

/// The first prompt, sent as `334 VXNlcm5hbWU6` (draft-murchison 2.1).
pub const USERNAME_PROMPT: &[u8] = b"Username:";
/// The second prompt, sent as `334 UGFzc3dvcmQ6`.
pub const PASSWORD_PROMPT: &[u8] = b"Password:";
