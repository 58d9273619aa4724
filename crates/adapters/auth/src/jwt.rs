//! HS256 access tokens. Only HS256 is accepted (`alg: none` and every other algorithm are
//! refused by the validation), and `exp`, `iat`, `sub` and `role` must all be present and valid.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use portside_app::users::{AccessToken, TokenError, TokenService};
use portside_domain::{Actor, Role, UserId};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

/// Seconds of clock skew tolerated between the processes that sign and verify.
const LEEWAY: u64 = 5;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: String,
    iat: i64,
    exp: i64,
}

/// Signs and verifies access tokens with one shared secret.
pub struct JwtTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl JwtTokens {
    /// Tokens signed with `secret` that live `ttl`.
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        validation.leeway = LEEWAY;
        JwtTokens {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        }
    }
}

impl TokenService for JwtTokens {
    fn issue(&self, actor: &Actor, now: OffsetDateTime) -> Result<AccessToken, TokenError> {
        let claims = Claims {
            sub: actor.user_id.to_string(),
            role: actor.role.as_str().to_owned(),
            iat: now.unix_timestamp(),
            exp: (now + self.ttl).unix_timestamp(),
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|_| TokenError::Invalid)?;
        Ok(AccessToken {
            token,
            expires_in: self.ttl.whole_seconds().unsigned_abs(),
        })
    }

    fn verify(&self, token: &str) -> Result<Actor, TokenError> {
        let data =
            decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| {
                match e.kind() {
                    ErrorKind::ExpiredSignature => TokenError::Expired,
                    _ => TokenError::Invalid,
                }
            })?;
        let c = data.claims;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        if c.iat > now + LEEWAY as i64 || c.iat > c.exp {
            return Err(TokenError::Invalid);
        }
        let user_id: UserId = c.sub.parse().map_err(|_| TokenError::Invalid)?;
        let role: Role = c.role.parse().map_err(|_| TokenError::Invalid)?;
        Ok(Actor { user_id, role })
    }

    fn new_refresh_token(&self) -> String {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn digest(&self, refresh_token: &str) -> String {
        Sha256::digest(refresh_token.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn actor() -> Actor {
        Actor {
            user_id: UserId(Uuid::now_v7()),
            role: Role::Customer,
        }
    }

    fn forge(header: &str, claims: &serde_json::Value, secret: &[u8]) -> String {
        use hmac_free::sign;
        let h = URL_SAFE_NO_PAD.encode(header);
        let c = URL_SAFE_NO_PAD.encode(claims.to_string());
        let sig = sign(secret, format!("{h}.{c}").as_bytes());
        format!("{h}.{c}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// HMAC-SHA256 from the hash alone, to forge tokens without the library under test.
    mod hmac_free {
        use sha2::{Digest, Sha256};
        pub fn sign(key: &[u8], msg: &[u8]) -> Vec<u8> {
            let mut k = [0u8; 64];
            if key.len() > 64 {
                k[..32].copy_from_slice(&Sha256::digest(key));
            } else {
                k[..key.len()].copy_from_slice(key);
            }
            let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
            let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
            let inner = Sha256::new()
                .chain_update(&ipad)
                .chain_update(msg)
                .finalize();
            Sha256::new()
                .chain_update(&opad)
                .chain_update(inner)
                .finalize()
                .to_vec()
        }
    }

    #[test]
    fn round_trip() {
        let t = JwtTokens::new(b"0123456789abcdef0123456789abcdef", Duration::minutes(15));
        let a = actor();
        let token = t.issue(&a, OffsetDateTime::now_utc()).unwrap();
        assert_eq!(token.expires_in, 900);
        assert_eq!(t.verify(&token.token).unwrap(), a);
    }

    #[test]
    fn refuses_expired_tampered_foreign_and_unsigned_tokens() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let t = JwtTokens::new(secret, Duration::minutes(15));
        let a = actor();
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let claims = serde_json::json!({"sub": a.user_id.to_string(), "role": "customer", "iat": now, "exp": now + 60});
        let hs = r#"{"alg":"HS256","typ":"JWT"}"#;
        assert_eq!(
            t.verify(&forge(hs, &claims, secret)).unwrap(),
            a,
            "the forger itself is right"
        );

        let old = t
            .issue(&a, OffsetDateTime::now_utc() - Duration::hours(1))
            .unwrap();
        assert_eq!(t.verify(&old.token), Err(TokenError::Expired));

        let good = t.issue(&a, OffsetDateTime::now_utc()).unwrap().token;
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        let admin = serde_json::json!({"sub": a.user_id.to_string(), "role": "admin", "iat": now, "exp": now + 60});
        parts[1] = URL_SAFE_NO_PAD.encode(admin.to_string());
        assert_eq!(
            t.verify(&parts.join(".")),
            Err(TokenError::Invalid),
            "tampered claims"
        );

        assert_eq!(
            t.verify(&forge(hs, &claims, b"another secret, another issuer!!")),
            Err(TokenError::Invalid),
            "wrong secret"
        );
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        assert_eq!(t.verify(&none), Err(TokenError::Invalid), "alg none");
        assert_eq!(
            t.verify(&forge(r#"{"alg":"HS512","typ":"JWT"}"#, &claims, secret)),
            Err(TokenError::Invalid),
            "other algorithms"
        );
        for missing in ["sub", "role", "iat", "exp"] {
            let mut c = claims.clone();
            c.as_object_mut().unwrap().remove(missing);
            assert_eq!(
                t.verify(&forge(hs, &c, secret)),
                Err(TokenError::Invalid),
                "missing {missing}"
            );
        }
        let future = serde_json::json!({"sub": a.user_id.to_string(), "role": "customer", "iat": now + 3600, "exp": now + 7200});
        assert_eq!(
            t.verify(&forge(hs, &future, secret)),
            Err(TokenError::Invalid),
            "issued in the future"
        );
        let bad_role = serde_json::json!({"sub": a.user_id.to_string(), "role": "root", "iat": now, "exp": now + 60});
        assert_eq!(
            t.verify(&forge(hs, &bad_role, secret)),
            Err(TokenError::Invalid)
        );
        assert_eq!(t.verify("not.a.jwt"), Err(TokenError::Invalid));
    }

    #[test]
    fn refresh_tokens_are_random_and_digested() {
        let t = JwtTokens::new(b"0123456789abcdef0123456789abcdef", Duration::minutes(15));
        let (a, b) = (t.new_refresh_token(), t.new_refresh_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43, "256 bits, base64url");
        assert_eq!(t.digest(&a), t.digest(&a));
        assert_eq!(t.digest(&a).len(), 64);
    }
}
