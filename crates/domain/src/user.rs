//! The users context: users with their email, password hash, role and membership, and
//! the actor a request acts as, which carries the authorization rules.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::aggregate::{Changes, aggregate};
use crate::error::DomainError;
use crate::events::DomainEvent;
use crate::ids::UserId;

/// What a user may do beyond their own data.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Acts on their own data only.
    Customer,
    /// Acts on everyone's data.
    Admin,
}

/// A user's membership level.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Membership {
    /// The default.
    Free,
    /// Bought through a membership checkout.
    Premium,
}

macro_rules! words {
    ($t:ty { $($v:ident => $s:literal),+ $(,)? }) => {
        impl $t {
            /// The wire and storage spelling.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),+ }
            }
        }
        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($s => Ok(Self::$v),)+
                    other => Err(format!("unknown value {other:?}; use one of: {}", [$($s),+].join(", "))),
                }
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

words!(Role { Customer => "customer", Admin => "admin" });
words!(Membership { Free => "free", Premium => "premium" });

/// Who a request acts as, from its access token.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Actor {
    pub user_id: UserId,
    /// Their role.
    pub role: Role,
}

impl Actor {
    /// Admins act on everyone's data.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Only the owner or an admin reads or changes something owned.
    pub fn may_access(&self, owner: UserId) -> bool {
        self.is_admin() || self.user_id == owner
    }
}

/// An email address, lower-cased. Validation follows the common subset of RFC 5321 that
/// real mailboxes use: `local@domain.tld`, at most 254 characters.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Validates and normalizes (lower case).
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        let invalid = || DomainError::InvalidEmail;
        if text.len() > 254 {
            return Err(invalid());
        }
        let (local, domain) = text.rsplit_once('@').ok_or_else(invalid)?;
        let local_ok = (1..=64).contains(&local.len())
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~.-".contains(&b));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|l| {
                (1..=63).contains(&l.len())
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
            && labels
                .last()
                .is_some_and(|tld| tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic()));
        if local_ok && domain_ok {
            Ok(Email(text.to_ascii_lowercase()))
        } else {
            Err(invalid())
        }
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A display name: 1 to 100 characters, no control characters, trimmed.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserName(String);

impl UserName {
    /// Validates a name.
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        let trimmed = text.trim();
        let count = trimmed.chars().count();
        if (1..=100).contains(&count) && !trimmed.chars().any(char::is_control) {
            Ok(UserName(trimmed.to_owned()))
        } else {
            Err(DomainError::InvalidName)
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The password policy (NIST SP 800-63B style: length over composition rules): 10 to 128
/// characters, at least 5 different characters, and not built from the email's local part.
pub fn check_password(password: &str, email: &Email) -> Result<(), DomainError> {
    let chars = password.chars().count();
    if chars < 10 {
        return Err(DomainError::WeakPassword("must be at least 10 characters"));
    }
    if chars > 128 {
        return Err(DomainError::WeakPassword("must be at most 128 characters"));
    }
    let mut distinct: Vec<char> = password.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 5 {
        return Err(DomainError::WeakPassword(
            "must use at least 5 different characters",
        ));
    }
    let local = email.as_str().split('@').next().unwrap_or("");
    if local.len() >= 4 && password.to_lowercase().contains(local) {
        return Err(DomainError::WeakPassword(
            "must not contain the email address",
        ));
    }
    Ok(())
}

/// Everything stored about a user.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct UserState {
    pub id: UserId,
    /// Unique, lower case.
    pub email: Email,
    /// Display name.
    pub name: UserName,
    /// Argon2id PHC string; never leaves the server.
    pub password_hash: String,
    /// Customer or admin.
    pub role: Role,
    /// Free or premium.
    pub membership: Membership,
    /// When the premium membership ends, unless renewed (`None`: free, or premium bought
    /// before memberships had periods, which does not end by itself).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub membership_until: Option<OffsetDateTime>,
    /// Optimistic concurrency.
    pub version: i64,
    /// Sequence of the last recorded event.
    pub event_sequence: i64,
    /// When registered.
    pub created_at: OffsetDateTime,
    /// When last changed.
    pub updated_at: OffsetDateTime,
}

/// What a consumer of user events needs; never the password hash.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct UserSnapshot {
    pub user_id: UserId,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub membership: Membership,
    /// When the premium membership ends, unless renewed.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub membership_until: Option<OffsetDateTime>,
    /// Version after the change.
    pub version: i64,
}

/// Why a membership ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MembershipEnd {
    /// Its period ran out without a renewal.
    Expired,
    /// The payment that bought it was refunded in full.
    Refunded,
}

/// Everything that happens to a user.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum UserEvent {
    /// `user.registered`.
    Registered {
        /// State after the change.
        user: UserSnapshot,
    },
    /// `user.updated`: name, email, password or role changed.
    Updated {
        /// State after the change.
        user: UserSnapshot,
    },
    /// `user.membership_upgraded`: became premium.
    MembershipUpgraded {
        /// State after the change.
        user: UserSnapshot,
    },
    /// `user.membership_renewed`: premium, its end moved a period later.
    MembershipRenewed {
        /// State after the change.
        user: UserSnapshot,
    },
    /// `user.membership_ended`: back to free.
    MembershipEnded {
        /// State after the change.
        user: UserSnapshot,
        /// Why.
        cause: MembershipEnd,
    },
    /// `user.deleted`.
    Deleted {
        /// State before deletion.
        user: UserSnapshot,
    },
}

impl UserEvent {
    /// `user.registered`.
    pub const REGISTERED: &'static str = "user.registered";
    /// `user.updated`.
    pub const UPDATED: &'static str = "user.updated";
    /// `user.membership_upgraded`.
    pub const MEMBERSHIP_UPGRADED: &'static str = "user.membership_upgraded";
    /// `user.membership_renewed`.
    pub const MEMBERSHIP_RENEWED: &'static str = "user.membership_renewed";
    /// `user.membership_ended`.
    pub const MEMBERSHIP_ENDED: &'static str = "user.membership_ended";
    /// `user.deleted`.
    pub const DELETED: &'static str = "user.deleted";
    /// Every user event type.
    pub const TYPES: &'static [&'static str] = &[
        Self::REGISTERED,
        Self::UPDATED,
        Self::MEMBERSHIP_UPGRADED,
        Self::MEMBERSHIP_RENEWED,
        Self::MEMBERSHIP_ENDED,
        Self::DELETED,
    ];
}

impl DomainEvent for UserEvent {
    const AGGREGATE: &'static str = "user";

    fn event_type(&self) -> &'static str {
        match self {
            UserEvent::Registered { .. } => Self::REGISTERED,
            UserEvent::Updated { .. } => Self::UPDATED,
            UserEvent::MembershipUpgraded { .. } => Self::MEMBERSHIP_UPGRADED,
            UserEvent::MembershipRenewed { .. } => Self::MEMBERSHIP_RENEWED,
            UserEvent::MembershipEnded { .. } => Self::MEMBERSHIP_ENDED,
            UserEvent::Deleted { .. } => Self::DELETED,
        }
    }
}

/// A user and the events recorded since load.
#[derive(Clone, Debug)]
pub struct User {
    state: UserState,
    changes: Changes<UserEvent>,
}

impl User {
    /// A new user (customer, free) with an already hashed password; records `user.registered`.
    pub fn register(
        id: UserId,
        email: Email,
        name: UserName,
        password_hash: String,
        role: Role,
        now: OffsetDateTime,
    ) -> Self {
        let mut user = User {
            state: UserState {
                id,
                email,
                name,
                password_hash,
                role,
                membership: Membership::Free,
                membership_until: None,
                version: 1,
                event_sequence: 0,
                created_at: now,
                updated_at: now,
            },
            changes: Changes::new(),
        };
        user.record(now, |user| UserEvent::Registered { user });
        user
    }

    /// From storage.
    pub fn restore(state: UserState) -> Self {
        User {
            changes: Changes::loaded(state.version),
            state,
        }
    }

    /// Stored data.
    pub fn state(&self) -> &UserState {
        &self.state
    }

    /// Identity.
    pub fn id(&self) -> UserId {
        self.state.id
    }

    /// Applies a profile change; records `user.updated` when anything changed.
    pub fn update(
        &mut self,
        name: Option<UserName>,
        email: Option<Email>,
        password_hash: Option<String>,
        role: Option<Role>,
        now: OffsetDateTime,
    ) {
        let before = self.state.clone();
        if let Some(n) = name {
            self.state.name = n;
        }
        if let Some(e) = email {
            self.state.email = e;
        }
        if let Some(h) = password_hash {
            self.state.password_hash = h;
        }
        if let Some(r) = role {
            self.state.role = r;
        }
        if self.state != before {
            self.touch(now);
            self.record(now, |user| UserEvent::Updated { user });
        }
    }

    /// A membership period paid: Free → Premium until `now + period`
    /// (`user.membership_upgraded`), or a premium membership's end moved a period later, from
    /// its current end, or from now when it has none (`user.membership_renewed`).
    pub fn add_membership_period(&mut self, period: time::Duration, now: OffsetDateTime) {
        let (from, event): (_, fn(UserSnapshot) -> UserEvent) = match self.state.membership {
            Membership::Free => (now, |user| UserEvent::MembershipUpgraded { user }),
            Membership::Premium => (
                self.state.membership_until.map_or(now, |end| end.max(now)),
                |user| UserEvent::MembershipRenewed { user },
            ),
        };
        self.state.membership = Membership::Premium;
        self.state.membership_until = Some(from + period);
        self.touch(now);
        self.record(now, event);
    }

    /// The payment of a membership period was refunded in full: the period is taken back, and
    /// when nothing of the membership remains (or it had no end) it ends
    /// (`user.membership_ended`, cause `refunded`). False when there was nothing to take back.
    pub fn take_back_membership_period(
        &mut self,
        period: time::Duration,
        now: OffsetDateTime,
    ) -> bool {
        if self.state.membership != Membership::Premium {
            return false;
        }
        match self.state.membership_until.map(|end| end - period) {
            Some(end) if end > now => {
                self.state.membership_until = Some(end);
                self.touch(now);
                self.record(now, |user| UserEvent::Updated { user });
            }
            _ => self.end_membership(MembershipEnd::Refunded, now),
        }
        true
    }

    /// A premium membership whose end has passed becomes free (`user.membership_ended`, cause
    /// `expired`); false otherwise.
    pub fn expire_membership(&mut self, now: OffsetDateTime) -> bool {
        match (self.state.membership, self.state.membership_until) {
            (Membership::Premium, Some(end)) if end <= now => {
                self.end_membership(MembershipEnd::Expired, now);
                true
            }
            _ => false,
        }
    }

    fn end_membership(&mut self, cause: MembershipEnd, now: OffsetDateTime) {
        self.state.membership = Membership::Free;
        self.state.membership_until = None;
        self.touch(now);
        self.record(now, |user| UserEvent::MembershipEnded { user, cause });
    }

    /// Records `user.deleted`; the store removes the row when it saves.
    pub fn delete(&mut self, now: OffsetDateTime) {
        self.touch(now);
        self.record(now, |user| UserEvent::Deleted { user });
    }

    fn touch(&mut self, now: OffsetDateTime) {
        self.changes.bump(&mut self.state.version);
        self.state.updated_at = now;
    }

    fn record(&mut self, now: OffsetDateTime, event: impl FnOnce(UserSnapshot) -> UserEvent) {
        let snapshot = UserSnapshot {
            user_id: self.state.id,
            email: self.state.email.as_str().to_owned(),
            name: self.state.name.as_str().to_owned(),
            role: self.state.role,
            membership: self.state.membership,
            membership_until: self.state.membership_until,
            version: self.state.version,
        };
        self.changes
            .record(&mut self.state.event_sequence, now, event(snapshot));
    }
}

aggregate!(User, UserEvent);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Aggregate;
    use uuid::Uuid;

    fn email(s: &str) -> Email {
        Email::parse(s).unwrap()
    }

    #[test]
    fn emails() {
        assert_eq!(
            email("Ada.Lovelace+x@Example.COM").as_str(),
            "ada.lovelace+x@example.com"
        );
        for bad in [
            "",
            "a",
            "a@",
            "@b.co",
            "a@b",
            "a@b.c",
            "a b@c.de",
            "a@@b.de",
            ".a@b.de",
            "a..b@c.de",
            "a@-b.de",
            "a@b.d3",
            "a@b..de",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        let long = format!("{}@{}.com", "a".repeat(64), "b".repeat(63));
        assert!(Email::parse(&long).is_ok());
        assert!(Email::parse(&format!("{}@b.com", "a".repeat(65))).is_err());
    }

    #[test]
    fn password_policy() {
        let e = email("grace@example.com");
        assert!(check_password("correct horse battery", &e).is_ok());
        for bad in [
            "short",
            "aaaaaaaaaaaa",
            "ababababababab",
            &"x1y2z3w4v5".repeat(13),
            "Grace-was-here-1",
        ] {
            assert_eq!(
                check_password(bad, &e).unwrap_err().code(),
                "password_weak",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn names() {
        assert_eq!(UserName::parse("  Ada  ").unwrap().as_str(), "Ada");
        assert!(UserName::parse("   ").is_err());
        assert!(UserName::parse("a\u{0}b").is_err());
        assert!(UserName::parse(&"n".repeat(101)).is_err());
    }

    #[test]
    fn only_the_owner_or_an_admin_may_access() {
        let (a, b) = (UserId(Uuid::from_u128(1)), UserId(Uuid::from_u128(2)));
        let customer = Actor {
            user_id: a,
            role: Role::Customer,
        };
        let admin = Actor {
            user_id: b,
            role: Role::Admin,
        };
        assert!(customer.may_access(a));
        assert!(!customer.may_access(b));
        assert!(admin.may_access(a));
    }

    #[test]
    fn membership_upgrades_once_and_updates_record_events() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let mut u = User::register(
            UserId(Uuid::nil()),
            email("a@b.co"),
            UserName::parse("A").unwrap(),
            "h".into(),
            Role::Customer,
            now,
        );
        u.mark_saved();
        u.add_membership_period(time::Duration::days(30), now);
        u.update(Some(UserName::parse("A").unwrap()), None, None, None, now);
        let types: Vec<_> = u
            .pending_events()
            .iter()
            .map(|e| e.event.event_type())
            .collect();
        assert_eq!(
            types,
            vec!["user.membership_upgraded"],
            "an update that changes nothing records nothing"
        );
        assert_eq!(u.state().version, 2);
        assert_eq!(
            "premium".parse::<Membership>().unwrap(),
            Membership::Premium
        );
        assert!("gold".parse::<Membership>().is_err());
    }

    #[test]
    fn a_membership_period_is_added_renewed_taken_back_and_expires() {
        let day = |d: i64| OffsetDateTime::UNIX_EPOCH + time::Duration::days(d);
        let period = time::Duration::days(30);
        let mut u = User::register(
            UserId(Uuid::nil()),
            email("a@b.co"),
            UserName::parse("A").unwrap(),
            "h".into(),
            Role::Customer,
            day(0),
        );
        u.mark_saved();
        u.add_membership_period(period, day(1));
        assert_eq!(
            (u.state().membership, u.state().membership_until),
            (Membership::Premium, Some(day(31)))
        );
        u.add_membership_period(period, day(10));
        assert_eq!(
            u.state().membership_until,
            Some(day(61)),
            "a renewal extends from the current end"
        );
        assert!(!u.expire_membership(day(60)));
        assert!(u.take_back_membership_period(period, day(20)));
        assert_eq!(
            (u.state().membership, u.state().membership_until),
            (Membership::Premium, Some(day(31))),
            "a refunded renewal takes its period back"
        );
        assert!(u.take_back_membership_period(period, day(20)));
        assert_eq!(
            (u.state().membership, u.state().membership_until),
            (Membership::Free, None)
        );
        assert!(
            !u.take_back_membership_period(period, day(20)),
            "a free user has nothing to take back"
        );
        u.add_membership_period(period, day(100));
        assert_eq!(
            u.state().membership_until,
            Some(day(130)),
            "after an end, a new period starts now"
        );
        assert!(!u.expire_membership(day(129)));
        assert!(u.expire_membership(day(130)));
        assert!(!u.expire_membership(day(131)), "it ends once");
        let events: Vec<_> = u
            .pending_events()
            .iter()
            .map(|e| {
                (
                    e.event.event_type(),
                    serde_json::to_value(&e.event).unwrap()["cause"].clone(),
                )
            })
            .collect();
        assert_eq!(
            events,
            vec![
                ("user.membership_upgraded", serde_json::Value::Null),
                ("user.membership_renewed", serde_json::Value::Null),
                ("user.updated", serde_json::Value::Null),
                ("user.membership_ended", "refunded".into()),
                ("user.membership_upgraded", serde_json::Value::Null),
                ("user.membership_ended", "expired".into()),
            ]
        );
    }
}
