//! Shopify's webhook signature: `base64(HMAC-SHA256(raw body, app secret))` in `X-Shopify-Hmac-Sha256`.

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Signs `body` exactly as Shopify does.
pub fn sign(body: &[u8], secret: &SecretString) -> String {
    STANDARD.encode(mac(body, secret).finalize().into_bytes())
}

/// True when `signature` (the header's value) is a valid signature of the raw `body` by any of the
/// `secrets`. The comparison is constant-time (`Mac::verify_slice`); a signature that is not base64
/// of 32 bytes is simply invalid.
pub fn verify<'a>(
    body: &[u8],
    signature: &str,
    secrets: impl IntoIterator<Item = &'a SecretString>,
) -> bool {
    let Ok(expected) = STANDARD.decode(signature.trim()) else {
        return false;
    };
    if expected.len() != 32 {
        return false;
    }
    // Every secret is tried, so timing does not tell which one matched.
    secrets.into_iter().fold(false, |ok, secret| {
        mac(body, secret).verify_slice(&expected).is_ok() | ok
    })
}

fn mac(body: &[u8], secret: &SecretString) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret.expose_secret().as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(body);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s)
    }

    #[test]
    fn signs_like_shopify() {
        // From Shopify/shopify-app-js validate.test.ts.
        assert_eq!(
            sign(br#"{"foo": "bar"}"#, &secret("test_secret_key")),
            "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g="
        );
    }

    #[test]
    fn every_vector_from_shopifys_libraries_verifies() {
        #[derive(serde::Deserialize)]
        struct Vector {
            body: String,
            secret: String,
            hmac: String,
        }
        let vectors: Vec<Vector> =
            serde_json::from_str(include_str!("../../tests/fixtures/hmac_vectors.json")).unwrap();
        assert!(!vectors.is_empty());
        for v in vectors {
            let key = secret(&v.secret);
            assert_eq!(sign(v.body.as_bytes(), &key), v.hmac);
            assert!(verify(v.body.as_bytes(), &v.hmac, [&key]));
            let mut changed = v.body.clone().into_bytes();
            changed[0] ^= 1;
            assert!(!verify(&changed, &v.hmac, [&key]));
        }
    }

    #[test]
    fn rejects_malformed_signatures() {
        let s = secret("secret");
        for bad in [
            "",
            "not base64!",
            "AAAA",
            "yCGX/RrK4fcuNtr3ztk5tQGsOBjcAzHpGLdMUrbV8y==",
        ] {
            assert!(!verify(b"foo=anything", bad, [&s]), "{bad:?}");
        }
    }

    #[test]
    fn any_configured_secret_verifies() {
        let (old, new) = (secret("old_secret"), secret("secret"));
        let sig = "XqRcjrSv57VACn6apEO9znyu/wkN1VC7QxdSPwK3Hzs=";
        assert!(verify(b"foo=anything", sig, [&new, &old]));
        assert!(!verify(b"foo=anything", sig, [&new]));
    }
}
