//! Credential adapters: argon2id password hashing (on the blocking pool, never on the async
//! runtime) and HS256 JWT access tokens with opaque random refresh tokens.

mod jwt;
mod password;

pub use jwt::JwtTokens;
pub use password::Argon2Hasher;
