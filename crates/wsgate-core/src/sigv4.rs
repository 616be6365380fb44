//! Parsing the SigV4 `Authorization` header and `X-Amz-Date` (no cryptography here: the gateway
//! builds the canonical request and checks the signature).

use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

/// The algorithm every SDK uses for SigV4.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The parts of a SigV4 `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// The access key id.
    pub access_key_id: String,
    /// `YYYYMMDD` of the credential scope.
    pub date: String,
    /// The region of the credential scope.
    pub region: String,
    /// The service of the credential scope (`execute-api`).
    pub service: String,
    /// Lower-case header names, in the order signed.
    pub signed_headers: Vec<String>,
    /// The hex signature.
    pub signature: String,
}

/// Why a SigV4 header is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    /// Not `AWS4-HMAC-SHA256 ...`.
    #[error("unsupported authorization scheme")]
    Scheme,
    /// A component is missing.
    #[error("authorization header lacks {0}")]
    Missing(&'static str),
    /// The credential scope is not `akid/date/region/service/aws4_request`.
    #[error("malformed credential scope")]
    Scope,
    /// `X-Amz-Date` is not `YYYYMMDDTHHMMSSZ`.
    #[error("malformed x-amz-date")]
    Date,
}

impl Authorization {
    /// Parses `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
    pub fn parse(header: &str) -> Result<Self, SigV4Error> {
        let rest = header
            .trim()
            .strip_prefix(ALGORITHM)
            .ok_or(SigV4Error::Scheme)?;
        let (mut credential, mut signed, mut signature) = (None, None, None);
        for part in rest.split(',') {
            let part = part.trim();
            if let Some((key, value)) = part.split_once('=') {
                match key.trim() {
                    "Credential" => credential = Some(value.trim()),
                    "SignedHeaders" => signed = Some(value.trim()),
                    "Signature" => signature = Some(value.trim()),
                    _ => {}
                }
            }
        }
        let credential = credential.ok_or(SigV4Error::Missing("Credential"))?;
        let signed = signed.ok_or(SigV4Error::Missing("SignedHeaders"))?;
        let signature = signature.ok_or(SigV4Error::Missing("Signature"))?;
        let scope: Vec<&str> = credential.split('/').collect();
        let [akid, date, region, service, terminator] = scope.as_slice() else {
            return Err(SigV4Error::Scope);
        };
        if *terminator != "aws4_request" || akid.is_empty() || date.len() != 8 || region.is_empty()
        {
            return Err(SigV4Error::Scope);
        }
        if signature.is_empty() || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(SigV4Error::Missing("Signature"));
        }
        let signed_headers: Vec<String> = signed
            .split(';')
            .filter(|h| !h.is_empty())
            .map(str::to_ascii_lowercase)
            .collect();
        if signed_headers.is_empty() {
            return Err(SigV4Error::Missing("SignedHeaders"));
        }
        Ok(Self {
            access_key_id: (*akid).to_owned(),
            date: (*date).to_owned(),
            region: (*region).to_owned(),
            service: (*service).to_owned(),
            signed_headers,
            signature: signature.to_ascii_lowercase(),
        })
    }
}

/// Parses `X-Amz-Date` (`20240524T140215Z`) into Unix seconds.
pub fn parse_amz_date(text: &str) -> Result<i64, SigV4Error> {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    PrimitiveDateTime::parse(text.trim(), &format)
        .map(|t| t.assume_utc().unix_timestamp())
        .map_err(|_| SigV4Error::Date)
}

/// Formats Unix seconds as `X-Amz-Date` (`20240524T140215Z`), as a signer writes the time it
/// signed at. Seconds past the year 9999, which [`parse_amz_date`] never returns, format as the
/// epoch.
pub fn format_amz_date(secs: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boto3_headers_parse() {
        let a = Authorization::parse(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240524/eu-west-1/execute-api/aws4_request, \
             SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=0123abcdef",
        )
        .expect("parses");
        assert_eq!(a.access_key_id, "AKIDEXAMPLE");
        assert_eq!(a.date, "20240524");
        assert_eq!(a.region, "eu-west-1");
        assert_eq!(a.service, "execute-api");
        assert_eq!(
            a.signed_headers,
            ["host", "x-amz-date", "x-amz-security-token"]
        );
        assert_eq!(a.signature, "0123abcdef");
    }

    #[test]
    fn malformed_headers_are_errors() {
        assert_eq!(Authorization::parse("Bearer x"), Err(SigV4Error::Scheme));
        assert_eq!(
            Authorization::parse("AWS4-HMAC-SHA256 SignedHeaders=host, Signature=ab"),
            Err(SigV4Error::Missing("Credential"))
        );
        assert_eq!(
            Authorization::parse(
                "AWS4-HMAC-SHA256 Credential=A/2024/r/s, SignedHeaders=host, Signature=ab"
            ),
            Err(SigV4Error::Scope)
        );
        assert_eq!(
            Authorization::parse(
                "AWS4-HMAC-SHA256 Credential=A/20240524/r/s/aws4_request, SignedHeaders=host, Signature=zz"
            ),
            Err(SigV4Error::Missing("Signature"))
        );
    }

    #[test]
    fn amz_dates_parse() {
        assert_eq!(parse_amz_date("20240524T140215Z"), Ok(1_716_559_335));
        assert_eq!(parse_amz_date("2024-05-24"), Err(SigV4Error::Date));
    }

    #[test]
    fn amz_dates_format_as_they_parse() {
        assert_eq!(format_amz_date(1_716_559_335), "20240524T140215Z");
        assert_eq!(format_amz_date(0), "19700101T000000Z");
        for text in ["20240229T235959Z", "00010101T000000Z", "99991231T235959Z"] {
            assert_eq!(format_amz_date(parse_amz_date(text).expect("parses")), text);
        }
    }
}
