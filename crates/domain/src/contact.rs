//! Value types that cannot hold invalid data, and the `Contact` entity.

use std::fmt;

use chrono::{DateTime, Utc};
use thiserror::Error;

/// Longest email accepted, in characters (the SMTP limit for a forward path, RFC 5321).
pub const MAX_EMAIL_LEN: usize = 254;
/// Longest phone number accepted, in characters, separators included.
pub const MAX_PHONE_LEN: usize = 32;
/// Largest phone number accepted as a JSON number: 15 digits, E.164's limit.
pub const MAX_PHONE_NUMBER: u64 = 999_999_999_999_999;

/// Why a request's identifiers were refused. Every message names the field and says what to do.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvalidRequest {
    #[error("give an email, a phoneNumber, or both: neither was given")]
    NoIdentifier,
    #[error("email is longer than {MAX_EMAIL_LEN} characters")]
    EmailTooLong,
    #[error("email is not an address: it must look like name@domain.tld, without display name or spaces")]
    EmailMalformed,
    #[error("email holds an invisible or control character (such as a zero-width space, a byte-order mark, a bidirectional override or a control code); send the address as it is written, without it")]
    EmailInvisibleCharacter,
    #[error("phoneNumber is longer than {MAX_PHONE_LEN} characters")]
    PhoneTooLong,
    #[error("phoneNumber as a number has at most 15 digits (E.164); send other forms as a string")]
    PhoneNumberTooLarge,
    #[error(
        "phoneNumber may only hold digits and the separators + - . ( ) and space, with at least one digit"
    )]
    PhoneMalformed,
    #[error("every identifier given is a placeholder that never identifies a customer ({0}); give a real email or phoneNumber")]
    OnlyBlocked(String),
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

/// An email address, normalized: surrounding white space removed and the whole address
/// lower-cased. (The local part is case-sensitive in theory; in practice no mail provider
/// treats `Doc@` and `doc@` as two people, and storefronts see both spellings of one.)
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

impl Email {
    /// `Ok(None)` for a blank value: storefront forms send `""` for an empty field.
    ///
    /// # Errors
    /// A value over the length limit, one holding an invisible or control character (a
    /// zero-width space, a bidirectional override, a control code …), or one that is not an address (checked by the `email_address`
    /// crate: `name@domain.tld`, no display name, no domain literal).
    pub fn parse(raw: &str) -> Result<Option<Self>, InvalidRequest> {
        // The limit is on what was sent, padding included.
        if raw.chars().count() > MAX_EMAIL_LEN {
            return Err(InvalidRequest::EmailTooLong);
        }
        let value = raw.trim();
        if value.is_empty() {
            return Ok(None);
        }
        if value.chars().any(is_invisible) {
            return Err(InvalidRequest::EmailInvisibleCharacter);
        }
        let options = email_address::Options {
            minimum_sub_domains: 2,
            allow_domain_literal: false,
            allow_display_text: false,
            allow_long_local_parts: false,
        };
        email_address::EmailAddress::parse_with_options(value, options)
            .map_err(|_| InvalidRequest::EmailMalformed)?;
        Ok(Some(Self(value.to_lowercase())))
    }

    /// Wraps a value read back from storage, as it was stored.
    pub fn from_stored(value: String) -> Self {
        Self(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A character that shows nothing, or shows text other than it is, told by its Unicode
/// properties (not a hand-kept list): every default-ignorable code point (zero-width
/// characters, joiners, variation selectors, the Hangul fillers, tags, the Mongolian vowel
/// separator …), every format character (bidirectional marks, embeddings, overrides and
/// isolates, the byte-order mark, interlinear annotations …), control codes, line,
/// paragraph and space separators, private-use and unassigned code points; plus U+2800,
/// the braille blank, which renders as a space but has no such property. An address
/// holding one looks like another address (or like none) while being a different string,
/// so it would split one customer in two, or pass for another in the console.
fn is_invisible(c: char) -> bool {
    use icu_properties::props::{DefaultIgnorableCodePoint, GeneralCategory, GeneralCategoryGroup};
    use icu_properties::{CodePointMapData, CodePointSetData};
    // Other (control, format, private use, surrogate, unassigned) and every separator.
    const UNSEEN: GeneralCategoryGroup =
        GeneralCategoryGroup::Other.union(GeneralCategoryGroup::Separator);
    // (An ASCII space is visible as a gap: such an address is malformed, and said so.)
    c != ' '
        && (c == '\u{2800}'
            || CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(c)
            || UNSEEN.contains(CodePointMapData::<GeneralCategory>::new().get(c)))
}

/// The region assumed for phone numbers written without a country code (an ISO 3166-1
/// alpha-2 code such as `US` or `GB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region(phonenumber::country::Id);

impl Region {
    /// # Errors
    /// When `code` is not a region libphonenumber knows.
    pub fn parse(code: &str) -> Result<Self, String> {
        code.trim()
            .to_uppercase()
            .parse::<phonenumber::country::Id>()
            .map(Self)
            .map_err(|_| {
                format!("{code:?} is not an ISO 3166-1 alpha-2 region code such as US or GB")
            })
    }
}

/// A phone number, normalized: E.164 (`+14155550100`) when it is a valid number (read in the
/// default region when it has no country code); otherwise, for a value made of digits and
/// the usual separators, its digits alone (`123456`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// `Ok(None)` for a blank value.
    ///
    /// # Errors
    /// A value over the length limit, or with anything but digits and separators.
    pub fn parse(raw: &str, region: Region) -> Result<Option<Self>, InvalidRequest> {
        if raw.chars().count() > MAX_PHONE_LEN {
            return Err(InvalidRequest::PhoneTooLong);
        }
        let value = raw.trim();
        if value.is_empty() {
            return Ok(None);
        }
        let allowed = |c: char| c.is_ascii_digit() || " +-.()".contains(c);
        if !value.chars().all(allowed) || !value.chars().any(|c| c.is_ascii_digit()) {
            return Err(InvalidRequest::PhoneMalformed);
        }
        if let Ok(number) = phonenumber::parse(Some(region.0), value) {
            if phonenumber::is_valid(&number) {
                let e164 = number.format().mode(phonenumber::Mode::E164).to_string();
                return Ok(Some(Self(e164)));
            }
        }
        Ok(Some(Self(
            value.chars().filter(char::is_ascii_digit).collect(),
        )))
    }

    /// A phone number sent as a JSON number: `123456` is the same phone as `"123456"`.
    ///
    /// # Errors
    /// As [`PhoneNumber::parse`].
    pub fn from_number(number: u64, region: Region) -> Result<Self, InvalidRequest> {
        if number > MAX_PHONE_NUMBER {
            return Err(InvalidRequest::PhoneNumberTooLarge);
        }
        Self::parse(&number.to_string(), region)?.ok_or(InvalidRequest::PhoneMalformed)
    }

    /// Wraps a value read back from storage, as it was stored.
    pub fn from_stored(value: String) -> Self {
        Self(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digits alone (E.164's `+` dropped).
    pub fn digits(&self) -> impl Iterator<Item = char> + '_ {
        self.0.chars().filter(char::is_ascii_digit)
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

/// One email or one phone number, normalized.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identifier {
    Email(Email),
    Phone(PhoneNumber),
}

impl Identifier {
    /// The request field that carries it: `email` or `phoneNumber`.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Email(_) => "email",
            Self::Phone(_) => "phoneNumber",
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Email(email) => email.as_str(),
            Self::Phone(phone) => phone.as_str(),
        }
    }

    /// A request that brings this value alone.
    pub fn as_identifiers(&self) -> Identifiers {
        let (email, phone) = match self {
            Self::Email(email) => (Some(email.clone()), None),
            Self::Phone(phone) => (None, Some(phone.clone())),
        };
        match Identifiers::new(email, phone) {
            Ok(identifiers) => identifiers,
            Err(_) => unreachable!("one of the two is always given"),
        }
    }

    /// The values of `identifiers`, email first.
    pub fn all_of(identifiers: &Identifiers) -> Vec<Self> {
        let email = identifiers.email().cloned().map(Self::Email);
        let phone = identifiers.phone().cloned().map(Self::Phone);
        email.into_iter().chain(phone).collect()
    }
}

/// How a contact hangs in its customer: the customer's primary, or a secondary pointing
/// straight at the primary (never at another secondary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    Primary,
    Secondary(ContactId),
}

impl Link {
    /// How the store and the API name a link's kind: `primary` or `secondary`.
    pub const fn precedence(self) -> &'static str {
        match self {
            Self::Primary => "primary",
            Self::Secondary(_) => "secondary",
        }
    }

    /// The primary a secondary links to; `None` for a primary.
    pub const fn linked_id(self) -> Option<ContactId> {
        match self {
            Self::Primary => None,
            Self::Secondary(primary) => Some(primary),
        }
    }
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
pub(crate) mod tests {
    use super::*;

    pub(crate) fn us() -> Region {
        Region::parse("US").expect("a region")
    }

    fn phone(raw: &str) -> Option<String> {
        PhoneNumber::parse(raw, us()).ok().flatten().map(|p| p.0)
    }

    fn email(raw: &str) -> Option<String> {
        Email::parse(raw).ok().flatten().map(|e| e.0)
    }

    #[test]
    fn blank_values_mean_not_given() {
        assert_eq!(Email::parse("   "), Ok(None));
        assert_eq!(PhoneNumber::parse("", us()), Ok(None));
        assert_eq!(
            Identifiers::new(None, None),
            Err(InvalidRequest::NoIdentifier)
        );
    }

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(
            email(" Doc@HillValley.edu "),
            Some("doc@hillvalley.edu".to_owned())
        );
        assert_eq!(email("doc@hillvalley.edu"), email("DOC@HILLVALLEY.EDU"));
    }

    #[test]
    fn the_three_spellings_of_one_us_number_are_one_phone() {
        let e164 = Some("+14155550100".to_owned());
        assert_eq!(phone("+1 (415) 555-0100"), e164);
        assert_eq!(phone("415-555-0100"), e164);
        assert_eq!(phone("14155550100"), e164);
        assert_eq!(
            PhoneNumber::from_number(4_155_550_100, us())
                .ok()
                .map(|p| p.0),
            e164
        );
        let gb = Region::parse("gb").expect("a region");
        assert_eq!(
            PhoneNumber::parse("020 7946 0018", gb)
                .ok()
                .flatten()
                .map(|p| p.0),
            Some("+442079460018".to_owned())
        );
    }

    #[test]
    fn numbers_that_are_not_valid_keep_their_digits() {
        assert_eq!(phone("123456"), Some("123456".to_owned()));
        assert_eq!(phone(" 12-34.56 "), Some("123456".to_owned()));
        assert_eq!(
            PhoneNumber::from_number(123_456, us()).ok().map(|p| p.0),
            Some("123456".to_owned())
        );
    }

    /// Every one of `emails` is refused with `error`.
    #[track_caller]
    fn assert_emails_refused(emails: &[&str], error: &InvalidRequest) {
        for bad in emails {
            assert_eq!(Email::parse(bad).as_ref(), Err(error), "{bad:?}");
        }
    }

    #[test]
    fn malformed_and_oversized_values_are_refused() {
        assert_emails_refused(
            &[
                "no-at-sign",
                "a b@x.io",
                "@x.io",
                "doc@localhost",
                "Doc <doc@x.io>",
                "a@b@c.io",
                "doc@[127.0.0.1]",
            ],
            &InvalidRequest::EmailMalformed,
        );
        let long = format!("{}@x.io", "a".repeat(MAX_EMAIL_LEN));
        assert_eq!(Email::parse(&long), Err(InvalidRequest::EmailTooLong));
        assert_eq!(
            PhoneNumber::parse("12ab", us()),
            Err(InvalidRequest::PhoneMalformed)
        );
        assert_eq!(
            PhoneNumber::parse("--", us()),
            Err(InvalidRequest::PhoneMalformed)
        );
        let long = "1".repeat(MAX_PHONE_LEN + 1);
        assert_eq!(
            PhoneNumber::parse(&long, us()),
            Err(InvalidRequest::PhoneTooLong)
        );
    }

    #[test]
    fn emails_with_invisible_or_control_characters_are_refused() {
        assert_emails_refused(
            &[
                "a\u{200B}@x.io",
                "a\u{200C}b@x.io",
                "a\u{200F}@x.io",
                "a@x\u{202A}.io",
                "\u{202E}a@x.io",
                "a@x.io\u{2066}",
                "a\u{2069}@x.io",
                "\u{FEFF}a@x.io",
                "a\u{0000}@x.io",
                "a\u{001B}@x.io",
                "a\u{007F}@x.io",
                "a\u{0085}b@x.io",
                "a\u{009F}@x.io",
                "a\u{00AD}b@x.io",
                "a\u{2060}b@x.io",
                // What an outside attack used to make look-alike customers (issue 21).
                "a\u{2028}b@x.io",
                "a\u{2029}b@x.io",
                "a\u{3164}b@x.io",
                "a\u{115F}b@x.io",
                "a\u{FFA0}b@x.io",
                "a\u{2800}b@x.io",
                "a\u{034F}b@x.io",
                "a\u{FE0F}b@x.io",
                "a\u{E0041}b@x.io",
                "a\u{180B}b@x.io",
                "a\u{180E}b@x.io",
                "a\u{17B4}b@x.io",
                "a\u{FFF9}b@x.io",
                "a\u{3000}b@x.io",
                "a\u{E000}b@x.io",
            ],
            &InvalidRequest::EmailInvisibleCharacter,
        );
        let message = InvalidRequest::EmailInvisibleCharacter.to_string();
        assert!(message.starts_with("email"), "{message}");
        // Surrounding white space is still trimmed as before, and a visible non-ASCII
        // address is still an address.
        assert_eq!(email("a@x.io\n"), Some("a@x.io".to_owned()));
        assert_eq!(email("jos\u{e9}@x.io"), Some("jos\u{e9}@x.io".to_owned()));
        assert_eq!(
            email("\u{5F20}\u{4F1F}@x.io"),
            Some("\u{5F20}\u{4F1F}@x.io".to_owned())
        );
    }

    #[test]
    fn regions_are_checked() {
        assert!(Region::parse("US").is_ok());
        assert!(Region::parse("ZZ").is_err());
        assert!(Region::parse("United States").is_err());
    }

    #[test]
    fn contact_ids_are_positive() {
        assert!(ContactId::new(0).is_none());
        assert!(ContactId::new(-3).is_none());
        assert_eq!(ContactId::new(7).map(ContactId::get), Some(7));
    }
}
