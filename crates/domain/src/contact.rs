//! Value types that cannot hold invalid data, and the `Contact` entity.

use std::fmt;

use chrono::{DateTime, Utc};
use thiserror::Error;

/// Longest email accepted, in characters (the SMTP limit for a forward path, RFC 5321).
pub const MAX_EMAIL_LEN: usize = 254;
/// Longest phone number accepted, in characters, separators included.
pub const MAX_PHONE_LEN: usize = 32;

/// Why a request's identifiers were refused. Every message names the field and says what to do.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvalidRequest {
    #[error("give an email, a phoneNumber, or both: neither was given")]
    NoIdentifier,
    #[error("email is longer than {MAX_EMAIL_LEN} characters")]
    EmailTooLong,
    #[error("email must look like name@domain, without spaces or control characters")]
    EmailMalformed,
    #[error("phoneNumber is longer than {MAX_PHONE_LEN} characters")]
    PhoneTooLong,
    #[error(
        "phoneNumber may only hold digits and the separators + - . ( ) and space, with at least one digit"
    )]
    PhoneMalformed,
}

/// Database identity of a contact. Always positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContactId(i64);

impl ContactId {
    /// `None` for zero or a negative number, which no contact can have.
    pub fn new(id: i64) -> Option<Self> {
        (id > 0).then_some(Self(id))
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for ContactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An email address as the customer gave it, surrounding white space removed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// `Ok(None)` for a blank value: storefront forms send `""` for an empty field.
    pub fn parse(raw: &str) -> Result<Option<Self>, InvalidRequest> {
        let value = raw.trim();
        if value.is_empty() {
            return Ok(None);
        }
        if value.chars().count() > MAX_EMAIL_LEN {
            return Err(InvalidRequest::EmailTooLong);
        }
        let well_formed = match value.rsplit_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.is_empty()
                    && !value.chars().any(|c| c.is_whitespace() || c.is_control())
            }
            None => false,
        };
        if !well_formed {
            return Err(InvalidRequest::EmailMalformed);
        }
        Ok(Some(Self(value.to_owned())))
    }

    /// Wraps a value read back from storage, which was validated when it was written.
    pub fn from_stored(value: String) -> Self {
        Self(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A phone number as the customer gave it, surrounding white space removed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// `Ok(None)` for a blank value.
    pub fn parse(raw: &str) -> Result<Option<Self>, InvalidRequest> {
        let value = raw.trim();
        if value.is_empty() {
            return Ok(None);
        }
        if value.chars().count() > MAX_PHONE_LEN {
            return Err(InvalidRequest::PhoneTooLong);
        }
        let allowed = |c: char| c.is_ascii_digit() || " +-.()".contains(c);
        if !value.chars().all(allowed) || !value.chars().any(|c| c.is_ascii_digit()) {
            return Err(InvalidRequest::PhoneMalformed);
        }
        Ok(Some(Self(value.to_owned())))
    }

    /// A phone number sent as a JSON number: `123456` is the same phone as `"123456"`.
    pub fn from_number(number: u64) -> Result<Self, InvalidRequest> {
        Self::parse(&number.to_string())?.ok_or(InvalidRequest::PhoneMalformed)
    }

    /// Wraps a value read back from storage, which was validated when it was written.
    pub fn from_stored(value: String) -> Self {
        Self(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What one `/identify` request brings: an email, a phone number, or both. Never neither.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identifiers {
    email: Option<Email>,
    phone: Option<PhoneNumber>,
}

impl Identifiers {
    pub fn new(email: Option<Email>, phone: Option<PhoneNumber>) -> Result<Self, InvalidRequest> {
        if email.is_none() && phone.is_none() {
            return Err(InvalidRequest::NoIdentifier);
        }
        Ok(Self { email, phone })
    }

    pub fn email(&self) -> Option<&Email> {
        self.email.as_ref()
    }

    pub fn phone(&self) -> Option<&PhoneNumber> {
        self.phone.as_ref()
    }
}

/// How a contact hangs in its customer: the customer's primary, or a secondary pointing
/// straight at the primary (never at another secondary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    Primary,
    Secondary(ContactId),
}

/// One stored contact: one order's email and phone, and where it hangs in its customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub id: ContactId,
    pub email: Option<Email>,
    pub phone: Option<PhoneNumber>,
    pub link: Link,
    pub created_at: DateTime<Utc>,
}

impl Contact {
    pub fn is_primary(&self) -> bool {
        self.link == Link::Primary
    }

    /// The id of this contact's customer: its primary's id.
    pub fn primary_id(&self) -> ContactId {
        match self.link {
            Link::Primary => self.id,
            Link::Secondary(primary) => primary,
        }
    }

    /// Age order: earliest `created_at` first, then lowest id. The oldest contact of a
    /// customer is its primary.
    pub fn age_key(&self) -> (DateTime<Utc>, ContactId) {
        (self.created_at, self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_values_mean_not_given() {
        assert_eq!(Email::parse("   "), Ok(None));
        assert_eq!(PhoneNumber::parse(""), Ok(None));
        assert_eq!(
            Identifiers::new(None, None),
            Err(InvalidRequest::NoIdentifier)
        );
    }

    #[test]
    fn values_are_trimmed() {
        let email = Email::parse(" doc@hillvalley.edu ").ok().flatten();
        assert_eq!(email.map(|e| e.0), Some("doc@hillvalley.edu".to_owned()));
        let phone = PhoneNumber::parse(" 123456\n").ok().flatten();
        assert_eq!(phone.map(|p| p.0), Some("123456".to_owned()));
    }

    #[test]
    fn a_numeric_phone_equals_its_string_form() {
        assert_eq!(
            PhoneNumber::from_number(123456).ok(),
            PhoneNumber::parse("123456").ok().flatten()
        );
    }

    #[test]
    fn malformed_and_oversized_values_are_refused() {
        assert_eq!(
            Email::parse("no-at-sign"),
            Err(InvalidRequest::EmailMalformed)
        );
        assert_eq!(
            Email::parse("a b@x.io"),
            Err(InvalidRequest::EmailMalformed)
        );
        assert_eq!(Email::parse("@x.io"), Err(InvalidRequest::EmailMalformed));
        let long = format!("{}@x.io", "a".repeat(MAX_EMAIL_LEN));
        assert_eq!(Email::parse(&long), Err(InvalidRequest::EmailTooLong));
        assert_eq!(
            PhoneNumber::parse("12ab"),
            Err(InvalidRequest::PhoneMalformed)
        );
        assert_eq!(
            PhoneNumber::parse("--"),
            Err(InvalidRequest::PhoneMalformed)
        );
        let long = "1".repeat(MAX_PHONE_LEN + 1);
        assert_eq!(PhoneNumber::parse(&long), Err(InvalidRequest::PhoneTooLong));
        assert!(PhoneNumber::parse("+1 (415) 555-0100").is_ok());
    }

    #[test]
    fn contact_ids_are_positive() {
        assert!(ContactId::new(0).is_none());
        assert!(ContactId::new(-3).is_none());
        assert_eq!(ContactId::new(7).map(ContactId::get), Some(7));
    }
}
