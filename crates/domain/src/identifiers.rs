//! What a request may link by: normalized identifiers, minus placeholder values that would
//! merge thousands of unrelated checkouts into one "customer" (`0000000000`,
//! `test@test.com`, …). The lists are configuration, joined by the unlink rules kept in the
//! store ([`crate::unlink`]); the matching lives here.

use std::collections::HashSet;

use wildmatch::WildMatch;

use crate::contact::{Email, Identifier, Identifiers, InvalidRequest, PhoneNumber, Region};
use crate::customer::Customer;

/// Placeholder values that never link customers.
#[derive(Debug, Clone, Default)]
pub struct BlockList {
    emails: HashSet<String>,
    email_patterns: Vec<WildMatch>,
    phones: HashSet<String>,
    repeated_digit_min_digits: Option<usize>,
}

impl BlockList {
    /// Nothing blocked.
    pub fn none() -> Self {
        Self::default()
    }

    /// `emails` and `phones` are compared after normalization (so `"(123) 456-7890"` in the
    /// list blocks every spelling of it); `email_patterns` are globs (`*@example.com`,
    /// `noreply@*`) matched against the normalized email; `repeated_digit_min_digits`, when
    /// set, blocks every number of at least that many digits made of one digit repeated
    /// (`000000`, `+1 111-111-1111`). Shorter ones (`1`, `222`, `7777`) are ordinary
    /// identifiers: a short number of one digit is what a small store or a test order
    /// really uses, while a long one is what thousands of strangers type into a required
    /// field.
    ///
    /// # Errors
    /// A list entry that is not a valid email or phone number, naming it.
    pub fn new(
        emails: &[String],
        email_patterns: &[String],
        phones: &[String],
        repeated_digit_min_digits: Option<usize>,
        region: Region,
    ) -> Result<Self, String> {
        let emails = emails
            .iter()
            .map(|e| match Email::parse(e) {
                Ok(Some(email)) => Ok(email.as_str().to_owned()),
                _ => Err(format!("blocked email {e:?} is not an email address")),
            })
            .collect::<Result<_, _>>()?;
        let phones = phones
            .iter()
            .map(|p| match PhoneNumber::parse(p, region) {
                Ok(Some(phone)) => Ok(phone.as_str().to_owned()),
                _ => Err(format!("blocked phone {p:?} is not a phone number")),
            })
            .collect::<Result<_, _>>()?;
        let email_patterns = email_patterns
            .iter()
            .map(|p| WildMatch::new(&p.trim().to_lowercase()))
            .collect();
        Ok(Self {
            emails,
            email_patterns,
            phones,
            repeated_digit_min_digits,
        })
    }

    /// This list and the values that unlink rules name.
    #[must_use]
    pub fn with_unlinked(mut self, unlinked: impl IntoIterator<Item = Identifier>) -> Self {
        for value in unlinked {
            match value {
                Identifier::Email(email) => self.emails.insert(email.as_str().to_owned()),
                Identifier::Phone(phone) => self.phones.insert(phone.as_str().to_owned()),
            };
        }
        self
    }

    pub fn blocks_email(&self, email: &Email) -> bool {
        self.emails.contains(email.as_str())
            || self
                .email_patterns
                .iter()
                .any(|p| p.matches(email.as_str()))
    }

    pub fn blocks_phone(&self, phone: &PhoneNumber) -> bool {
        if self.phones.contains(phone.as_str()) {
            return true;
        }
        let Some(min_digits) = self.repeated_digit_min_digits else {
            return false;
        };
        let mut digits = phone.digits();
        let Some(first) = digits.next() else {
            return false;
        };
        let mut count = 1;
        digits.all(|d| {
            count += 1;
            d == first
        }) && count >= min_digits
    }
}

/// How identifiers are read: the region for numbers without a country code, and the values
/// that never link.
#[derive(Debug, Clone)]
pub struct IdentifierPolicy {
    pub region: Region,
    pub blocked: BlockList,
}

/// A phone number as the request carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawPhone {
    Text(String),
    /// A JSON number: a whole number of at least 0.
    Number(u64),
}

/// A value of the request that was not used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    /// `email` or `phoneNumber`, as the request named it.
    pub field: &'static str,
    /// The normalized value.
    pub value: String,
    pub reason: &'static str,
}

/// The identifiers a request may link by, and what was set aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    pub identifiers: Identifiers,
    pub ignored: Vec<Ignored>,
}

impl IdentifierPolicy {
    /// This policy, with the values that unlink rules name blocked as well.
    #[must_use]
    pub fn with_unlinked(&self, unlinked: &[Identifier]) -> Self {
        Self {
            region: self.region,
            blocked: self.blocked.clone().with_unlinked(unlinked.iter().cloned()),
        }
    }

    /// Normalizes and validates the request's values and sets blocked ones aside.
    ///
    /// # Errors
    /// An invalid value; no value at all ([`InvalidRequest::NoIdentifier`]); only blocked
    /// values ([`InvalidRequest::OnlyBlocked`]).
    pub fn admit(
        &self,
        email: Option<&str>,
        phone: Option<RawPhone>,
    ) -> Result<Admitted, InvalidRequest> {
        let email = match email {
            Some(raw) => Email::parse(raw)?,
            None => None,
        };
        let phone = match phone {
            Some(RawPhone::Text(raw)) => PhoneNumber::parse(&raw, self.region)?,
            Some(RawPhone::Number(n)) => Some(PhoneNumber::from_number(n, self.region)?),
            None => None,
        };
        Admitted::screen(
            email,
            phone,
            Vec::new(),
            |e| self.blocked.blocks_email(e),
            |p| self.blocked.blocks_phone(p),
        )
    }
}

impl Ignored {
    fn blocked(field: &'static str, value: &str) -> Self {
        Self {
            field,
            value: value.to_owned(),
            reason: "blocked",
        }
    }

    /// The values of a request the merge guard refused to store (rule 6) that the customer
    /// it was answered with does not hold: nothing of the request was stored, and the
    /// answer says so.
    pub fn refused_by_merge_guard(request: &Identifiers, answered: &Customer) -> Vec<Self> {
        let email = request
            .email()
            .filter(|e| !answered.emails.contains(e))
            .map(|e| ("email", e.as_str()));
        let phone = request
            .phone()
            .filter(|p| !answered.phone_numbers.contains(p))
            .map(|p| ("phoneNumber", p.as_str()));
        email
            .into_iter()
            .chain(phone)
            .map(|(field, value)| Self::merge_guard(field, value))
            .collect()
    }

    fn merge_guard(field: &'static str, value: &str) -> Self {
        Self {
            field,
            value: value.to_owned(),
            reason: "merge_guard",
        }
    }
}

/// Which identifier of a request the merge guard drops first when storing the whole request
/// would grow a customer past a limit (rule 6): the last in this order. Setting
/// `identifiers.priority`; email before phone by default, since a phone is the value
/// households, offices and placeholders share.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IdentifierPriority {
    #[default]
    EmailFirst,
    PhoneFirst,
}

impl IdentifierPriority {
    /// From the setting's list of field names, highest priority first: `["email",
    /// "phoneNumber"]` or `["phoneNumber", "email"]`.
    ///
    /// # Errors
    /// Any other list, saying what is expected.
    pub fn parse(fields: &[String]) -> Result<Self, String> {
        match fields
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
        {
            ["email", "phoneNumber"] => Ok(Self::EmailFirst),
            ["phoneNumber", "email"] => Ok(Self::PhoneFirst),
            _ => Err(
                "must name email and phoneNumber once each, highest priority first \
                 (e.g. [\"email\", \"phoneNumber\"])"
                    .to_owned(),
            ),
        }
    }

    /// `identifiers` without its lowest-priority identifier, and that identifier; `None`
    /// when it holds one identifier only (there is nothing left to drop).
    pub fn split_lowest(self, identifiers: &Identifiers) -> Option<(Identifiers, Identifier)> {
        let (email, phone) = (identifiers.email()?, identifiers.phone()?);
        let (kept, dropped) = match self {
            Self::EmailFirst => (
                Identifiers::new(Some(email.clone()), None),
                Identifier::Phone(phone.clone()),
            ),
            Self::PhoneFirst => (
                Identifiers::new(None, Some(phone.clone())),
                Identifier::Email(email.clone()),
            ),
        };
        Some((kept.ok()?, dropped))
    }
}

impl Admitted {
    /// This request without its lowest-priority identifier, which joins `ignored` with the
    /// merge guard as its reason; `None` when it holds one identifier only.
    #[must_use]
    pub fn without_lowest(&self, priority: IdentifierPriority) -> Option<Self> {
        let (identifiers, dropped) = priority.split_lowest(&self.identifiers)?;
        let mut ignored = self.ignored.clone();
        ignored.push(Ignored::merge_guard(dropped.field(), dropped.as_str()));
        Some(Self {
            identifiers,
            ignored,
        })
    }
}

impl From<Identifiers> for Admitted {
    /// A request with nothing set aside.
    fn from(identifiers: Identifiers) -> Self {
        Self {
            identifiers,
            ignored: Vec::new(),
        }
    }
}

impl Admitted {
    /// Sets aside the values that unlink rules name ([`crate::unlink`]), as blocked
    /// placeholders are.
    ///
    /// # Errors
    /// [`InvalidRequest::OnlyBlocked`] when nothing is left.
    pub fn set_aside(self, unlinked: &[Identifier]) -> Result<Self, InvalidRequest> {
        Self::screen(
            self.identifiers.email().cloned(),
            self.identifiers.phone().cloned(),
            self.ignored,
            |e| unlinked.contains(&Identifier::Email(e.clone())),
            |p| unlinked.contains(&Identifier::Phone(p.clone())),
        )
    }

    /// The request of `email` and `phone` without the values the predicates block, which
    /// join `ignored`.
    fn screen(
        email: Option<Email>,
        phone: Option<PhoneNumber>,
        mut ignored: Vec<Ignored>,
        blocks_email: impl Fn(&Email) -> bool,
        blocks_phone: impl Fn(&PhoneNumber) -> bool,
    ) -> Result<Self, InvalidRequest> {
        let email = email.filter(|e| {
            let blocked = blocks_email(e);
            if blocked {
                ignored.push(Ignored::blocked("email", e.as_str()));
            }
            !blocked
        });
        let phone = phone.filter(|p| {
            let blocked = blocks_phone(p);
            if blocked {
                ignored.push(Ignored::blocked("phoneNumber", p.as_str()));
            }
            !blocked
        });
        match Identifiers::new(email, phone) {
            Ok(identifiers) => Ok(Self {
                identifiers,
                ignored,
            }),
            Err(InvalidRequest::NoIdentifier) if !ignored.is_empty() => {
                let values: Vec<String> = ignored
                    .iter()
                    .map(|i| format!("{} {}", i.field, i.value))
                    .collect();
                Err(InvalidRequest::OnlyBlocked(values.join(", ")))
            }
            Err(other) => Err(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contact::tests::us;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    fn policy() -> IdentifierPolicy {
        IdentifierPolicy {
            region: us(),
            blocked: BlockList::new(
                &strings(&["test@test.com"]),
                &strings(&["*@example.com", "noreply@*"]),
                &strings(&["1234567890", "0"]),
                Some(6),
                us(),
            )
            .expect("a valid list"),
        }
    }

    #[test]
    fn each_blocked_value_is_refused_alone() {
        let policy = policy();
        for email in [
            "test@test.com",
            " TEST@Test.com",
            "anyone@example.com",
            "noreply@shop.io",
        ] {
            assert!(
                matches!(
                    policy.admit(Some(email), None),
                    Err(InvalidRequest::OnlyBlocked(_))
                ),
                "{email}"
            );
        }
        for phone in [
            "0000000000",
            "000-000-0000",
            "1234567890",
            "(123) 456-7890",
            "+1 111 111 1111",
            "111111",
            "999-999",
        ] {
            assert!(
                matches!(
                    policy.admit(None, Some(RawPhone::Text(phone.to_owned()))),
                    Err(InvalidRequest::OnlyBlocked(_))
                ),
                "{phone}"
            );
        }
        assert!(matches!(
            policy.admit(None, Some(RawPhone::Number(0))),
            Err(InvalidRequest::OnlyBlocked(_))
        ));
    }

    #[test]
    fn a_blocked_value_next_to_a_good_one_is_set_aside() {
        let admitted = policy()
            .admit(
                Some("doc@hillvalley.edu"),
                Some(RawPhone::Text("0000000000".to_owned())),
            )
            .expect("admitted");
        assert_eq!(
            admitted.identifiers.email().map(Email::as_str),
            Some("doc@hillvalley.edu")
        );
        assert_eq!(admitted.identifiers.phone(), None);
        assert_eq!(
            admitted.ignored,
            vec![Ignored {
                field: "phoneNumber",
                value: "0000000000".to_owned(),
                reason: "blocked"
            }]
        );
    }

    #[test]
    fn ordinary_values_pass() {
        let admitted = policy()
            .admit(Some("doc@hillvalley.edu"), Some(RawPhone::Number(123_456)))
            .expect("admitted");
        assert!(admitted.ignored.is_empty());
        assert_eq!(
            admitted.identifiers.phone().map(PhoneNumber::as_str),
            Some("123456")
        );
    }

    #[test]
    fn short_numbers_of_one_digit_are_ordinary_identifiers() {
        for phone in ["1", "22", "222", "777", "7777", "99999"] {
            let admitted = policy()
                .admit(None, Some(RawPhone::Text(phone.to_owned())))
                .expect("an ordinary phone");
            assert!(admitted.ignored.is_empty(), "{phone}");
            assert_eq!(
                admitted.identifiers.phone().map(PhoneNumber::as_str),
                Some(phone)
            );
        }
        let unlimited = BlockList::new(&[], &[], &[], Some(1), us()).expect("a valid list");
        let one = PhoneNumber::parse("1", us())
            .ok()
            .flatten()
            .expect("a phone");
        assert!(
            unlimited.blocks_phone(&one),
            "a lower threshold still applies"
        );
        let off = BlockList::new(&[], &[], &[], None, us()).expect("a valid list");
        let zeros = PhoneNumber::parse("0000000000", us())
            .ok()
            .flatten()
            .expect("a phone");
        assert!(!off.blocks_phone(&zeros), "the rule can be turned off");
    }

    #[test]
    fn a_bad_list_entry_is_named() {
        let error = BlockList::new(&strings(&["not an email"]), &[], &[], None, us());
        assert!(error.is_err_and(|e| e.contains("not an email")));
    }
}
