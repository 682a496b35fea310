//! The user seam: asking the person at the keyboard.
//!
//! A prompt must name the RP ID (what the browser verified), never only the
//! RP's self-chosen display name, plus the account and what is being asked,
//! so that a person can refuse a request they did not start.

use std::time::Duration;

/// What the person is asked to approve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Create a passkey.
    Register,
    /// Sign in.
    SignIn,
    /// MakeCredential hit the excludeList: the spec asks for presence before
    /// saying so, so a page cannot probe for credentials silently.
    AlreadyRegistered,
    /// Erase every passkey (authenticatorReset).
    Reset,
    /// The platform asks which of several authenticators to use.
    Select,
    /// The platform asks for a PIN/UV token through built-in verification.
    Unlock,
    /// The passkey manager asks to delete one passkey.
    Delete,
    /// The passkey manager asks for a first PIN.
    SetPin,
    /// The passkey manager asks to change the PIN.
    ChangePin,
    /// Not a question: what the person approved could not be done
    /// ([`UserPresence::report`]).
    Failed,
}

impl Action {
    pub fn describe(self) -> &'static str {
        match self {
            Action::Register => "create a passkey",
            Action::SignIn => "sign in",
            Action::AlreadyRegistered => "confirm (a passkey already exists here)",
            Action::Reset => "ERASE ALL PASSKEYS",
            Action::Select => "select this security key",
            Action::Unlock => "unlock passkeys",
            Action::Delete => "delete this passkey",
            Action::SetPin => "set a PIN",
            Action::ChangePin => "change the PIN",
            Action::Failed => "hear why it failed",
        }
    }
}

#[derive(Debug, Clone)]
pub struct PresenceRequest {
    pub action: Action,
    /// The RP ID (empty for Reset and Select, which have none).
    pub rp_id: String,
    pub user_name: Option<String>,
    /// A username-less sign-in that found several passkeys, offered to a
    /// prompt that [can choose](UserPresence::can_choose), most recent
    /// first: the person picks one here instead of in the platform's own
    /// chooser (CTAP 2.1 §6.2.2, an authenticator with a display). Empty
    /// otherwise.
    pub accounts: Vec<AccountChoice>,
}

impl PresenceRequest {
    /// A request that offers no choice of account.
    pub fn new(action: Action, rp_id: &str, user_name: Option<&str>) -> Self {
        Self {
            action,
            rp_id: rp_id.to_owned(),
            user_name: user_name.map(str::to_owned),
            accounts: Vec::new(),
        }
    }
}

/// One account of a choice, as the site named it when it registered: both
/// strings are the site's own words, so prompts sanitise them like any
/// other user name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountChoice {
    pub user_name: Option<String>,
    pub display_name: Option<String>,
}

/// Why the person's answer is not a yes: the one refusal type of this
/// seam, mapped once to CTAP status codes (`From<Refusal> for CtapError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The person said no.
    Denied,
    /// Nobody answered before the deadline.
    TimedOut,
    /// The platform sent CTAPHID_CANCEL.
    Cancelled,
}

impl From<Refusal> for crate::status::CtapError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Denied => Self::OperationDenied,
            Refusal::TimedOut => Self::UserActionTimeout,
            Refusal::Cancelled => Self::KeepaliveCancel,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// `chosen`: the index into the request's `accounts` the person picked;
    /// `None` when nothing was offered, or when the prompt approved without
    /// choosing (one that cannot show the list): the platform then chooses.
    Approved {
        chosen: Option<usize>,
    },
    Refused(Refusal),
}

impl Presence {
    /// Approved, with no account chosen.
    pub const APPROVED: Presence = Presence::Approved { chosen: None };
}

/// Status shown to the platform through CTAPHID_KEEPALIVE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum KeepaliveStatus {
    Processing = 1,
    UpNeeded = 2,
}

/// What the transport lends the authenticator while one request runs.
pub trait Interaction: Sync {
    /// True once the platform has cancelled this request.
    fn is_cancelled(&self) -> bool;
    /// Changes what the keepalives report.
    fn set_status(&self, status: KeepaliveStatus);
}

/// An interaction with nobody on the other end: never cancelled, keepalives go nowhere.
/// For unit tests and in-process callers.
#[derive(Debug, Default)]
pub struct NoInteraction;

impl Interaction for NoInteraction {
    fn is_cancelled(&self) -> bool {
        false
    }
    fn set_status(&self, _: KeepaliveStatus) {}
}

/// The answer to a request for user verification: the PIN the person typed
/// into our own prompt (which is also their presence), and the account they
/// picked when the request offered some (as in [`Presence::Approved`]), or
/// why there is none.
pub enum Verification {
    Pin {
        pin: zeroize::Zeroizing<String>,
        chosen: Option<usize>,
    },
    Refused(Refusal),
}

impl Verification {
    /// The PIN, with no account chosen.
    pub fn pin(pin: zeroize::Zeroizing<String>) -> Self {
        Verification::Pin { pin, chosen: None }
    }
}

impl std::fmt::Debug for Verification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verification::Pin { chosen, .. } => write!(f, "Pin(<redacted>, chosen {chosen:?})"),
            Verification::Refused(r) => write!(f, "Refused({r:?})"),
        }
    }
}

/// The answer to a request for a new PIN.
pub enum NewPin {
    /// `current` only when it was asked for; `new` was typed twice and matched.
    Typed {
        current: Option<zeroize::Zeroizing<String>>,
        new: zeroize::Zeroizing<String>,
    },
    Refused(Refusal),
}

impl std::fmt::Debug for NewPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NewPin::Typed { .. } => f.write_str("Typed(<redacted>)"),
            NewPin::Refused(r) => write!(f, "Refused({r:?})"),
        }
    }
}

pub trait UserPresence: Send {
    /// Whether this implementation can collect a PIN itself (built-in user
    /// verification). GetInfo's `uv` option is advertised only if it can.
    fn can_verify(&self) -> bool {
        false
    }

    /// Whether this implementation can show a list of accounts and let the
    /// person pick one ([`PresenceRequest::accounts`]). Only then does a
    /// username-less sign-in with several passkeys offer them; otherwise
    /// the platform gets numberOfCredentials and chooses itself.
    fn can_choose(&self) -> bool {
        false
    }

    /// Ask the person for their PIN (and so for their presence) for `req`.
    /// `retries` is shown so they know how many tries are left.
    fn request_verification(
        &mut self,
        _req: &PresenceRequest,
        _retries: u8,
        _timeout: Duration,
        _io: &dyn Interaction,
    ) -> Verification {
        Verification::Refused(Refusal::Denied)
    }

    /// Ask the person for a new PIN (typed twice) and, when `current` is
    /// true, for the PIN they have now. Prompts that cannot ask refuse.
    fn request_new_pin(
        &mut self,
        _req: &PresenceRequest,
        _current: bool,
        _min_length: u8,
        _retries: Option<u8>,
        _timeout: Duration,
        _io: &dyn Interaction,
    ) -> NewPin {
        NewPin::Refused(Refusal::Denied)
    }

    /// Tell the person why what they approved failed (`message`, plain
    /// words). Must not wait for them: the platform's answer is not held up.
    fn report(&mut self, _req: &PresenceRequest, _message: &str) {}

    /// Ask for presence and wait at most `timeout` for an answer, returning
    /// early with `Cancelled` when `io.is_cancelled()` becomes true.
    fn request_presence(
        &mut self,
        req: &PresenceRequest,
        timeout: Duration,
        io: &dyn Interaction,
    ) -> Presence;
}

/// Approves every request at once. Only for the simulation transport, where
/// there is no device to touch; the daemon refuses it with real transports.
#[derive(Debug, Default)]
pub struct AlwaysApprove;

impl UserPresence for AlwaysApprove {
    fn request_presence(&mut self, _: &PresenceRequest, _: Duration, _: &dyn Interaction) -> Presence {
        Presence::APPROVED
    }
}

/// One scripted answer.
#[derive(Clone, PartialEq, Eq)]
pub enum Step {
    /// Type this PIN (and approve).
    Pin(String),
    Approve,
    Deny,
    /// Wait this long (keepalives flow, cancel is honoured), then approve.
    DelayThenApprove(Duration),
    /// Never answer: the request ends by timeout or cancel.
    NoAnswer,
    /// Pick the account at this index (0 = the first shown) and approve; a
    /// verification request then types the fallback PIN.
    Choose(usize),
}

/// Never prints a scripted PIN: logs must not carry secrets, even test ones.
impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Pin(_) => f.write_str("Pin(<redacted>)"),
            Step::Approve => f.write_str("Approve"),
            Step::Deny => f.write_str("Deny"),
            Step::DelayThenApprove(d) => write!(f, "DelayThenApprove({d:?})"),
            Step::NoAnswer => f.write_str("NoAnswer"),
            Step::Choose(i) => write!(f, "Choose({i})"),
        }
    }
}

impl std::str::FromStr for Step {
    type Err = String;
    /// `approve`, `deny`, `delay <ms>`, `wait`, `pin <PIN>`, `choose <n>`
    /// (the n-th account shown, counted from 1, as a person reads a list).
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(pin) = s.trim_start().strip_prefix("pin ") {
            return Ok(Step::Pin(pin.trim_end_matches(['\r', '\n']).to_owned()));
        }
        let mut words = s.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("approve"), None, None) => Ok(Step::Approve),
            (Some("deny"), None, None) => Ok(Step::Deny),
            (Some("wait"), None, None) => Ok(Step::NoAnswer),
            (Some("delay"), Some(ms), None) => ms
                .parse()
                .map(|ms| Step::DelayThenApprove(Duration::from_millis(ms)))
                .map_err(|_| format!("bad delay {ms:?}")),
            (Some("choose"), Some(n), None) => match n.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(Step::Choose(n - 1)),
                _ => Err(format!("bad choice {n:?} (the first account is 1)")),
            },
            _ => Err(format!(
                "unknown presence step {s:?} (approve, deny, wait, delay <ms>, pin <PIN>, choose <n>)"
            )),
        }
    }
}

/// Runs a scripted step: waits in small slices so cancel is seen quickly.
pub fn play_step(step: &Step, timeout: Duration, io: &dyn Interaction) -> Presence {
    io.set_status(KeepaliveStatus::UpNeeded);
    let (wait, then) = match *step {
        Step::Approve | Step::Pin(_) => return Presence::APPROVED,
        Step::Choose(i) => return Presence::Approved { chosen: Some(i) },
        Step::Deny => return Presence::Refused(Refusal::Denied),
        Step::DelayThenApprove(d) if d < timeout => (d, Presence::APPROVED),
        Step::DelayThenApprove(_) | Step::NoAnswer => (timeout, Presence::Refused(Refusal::TimedOut)),
    };
    let start = std::time::Instant::now();
    while start.elapsed() < wait {
        if io.is_cancelled() {
            return Presence::Refused(Refusal::Cancelled);
        }
        std::thread::sleep(Duration::from_millis(5).min(wait.saturating_sub(start.elapsed())));
    }
    then
}

/// Runs a scripted step for a verification request: `pin` types the PIN,
/// `delay` waits and then types `fallback_pin` (if any).
pub fn play_verification(
    step: &Step,
    fallback_pin: Option<&str>,
    timeout: Duration,
    io: &dyn Interaction,
) -> Verification {
    let typed = |pin: &str, chosen| Verification::Pin {
        pin: zeroize::Zeroizing::new(pin.to_owned()),
        chosen,
    };
    match step {
        Step::Pin(pin) => typed(pin, None),
        other => match play_step(other, timeout, io) {
            Presence::Approved { chosen } => fallback_pin
                .map(|pin| typed(pin, chosen))
                .unwrap_or(Verification::Refused(Refusal::Denied)),
            Presence::Refused(r) => Verification::Refused(r),
        },
    }
}

/// Answers from a fixed list of steps, then with a default. For tests.
pub struct Scripted {
    steps: std::collections::VecDeque<Step>,
    default: Step,
    /// Every request seen, so tests can check what the person was shown.
    pub seen: Vec<PresenceRequest>,
    pin: Option<String>,
    can_choose: bool,
}

impl Scripted {
    pub fn new(steps: impl IntoIterator<Item = Step>, default: Step) -> Self {
        Self {
            steps: steps.into_iter().collect(),
            default,
            seen: Vec::new(),
            pin: None,
            can_choose: true,
        }
    }

    /// A person whose prompt cannot list accounts (as pinentry's cannot).
    pub fn without_choice(mut self) -> Self {
        self.can_choose = false;
        self
    }

    /// The PIN typed when a verification request meets `approve` or `delay`.
    pub fn with_pin(mut self, pin: &str) -> Self {
        self.pin = Some(pin.to_owned());
        self
    }
    pub fn push(&mut self, step: Step) {
        self.steps.push_back(step);
    }
}

impl UserPresence for Scripted {
    fn request_presence(
        &mut self,
        req: &PresenceRequest,
        timeout: Duration,
        io: &dyn Interaction,
    ) -> Presence {
        self.seen.push(req.clone());
        let step = self.steps.pop_front().unwrap_or_else(|| self.default.clone());
        play_step(&step, timeout, io)
    }

    fn can_verify(&self) -> bool {
        true
    }

    fn can_choose(&self) -> bool {
        self.can_choose
    }

    fn request_verification(
        &mut self,
        req: &PresenceRequest,
        _retries: u8,
        timeout: Duration,
        io: &dyn Interaction,
    ) -> Verification {
        self.seen.push(req.clone());
        let step = self.steps.pop_front().unwrap_or_else(|| self.default.clone());
        play_verification(&step, self.pin.as_deref(), timeout, io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choose_counts_from_one_and_refuses_what_is_not_a_count() {
        assert_eq!("choose 1".parse::<Step>(), Ok(Step::Choose(0)));
        assert_eq!(" choose 2 ".parse::<Step>(), Ok(Step::Choose(1)));
        for bad in ["choose", "choose 0", "choose -1", "choose two", "choose 1 2"] {
            assert!(bad.parse::<Step>().is_err(), "{bad}");
        }
        assert_eq!("approve".parse::<Step>(), Ok(Step::Approve));
    }

    #[test]
    fn a_pick_approves_and_a_verification_types_the_fallback_pin_with_it() {
        let long = Duration::from_secs(1);
        assert_eq!(
            play_step(&Step::Choose(3), long, &NoInteraction),
            Presence::Approved { chosen: Some(3) }
        );
        assert_eq!(
            play_step(&Step::Approve, long, &NoInteraction),
            Presence::APPROVED
        );
        match play_verification(&Step::Choose(1), Some("1234"), long, &NoInteraction) {
            Verification::Pin { pin, chosen } => assert_eq!((pin.as_str(), chosen), ("1234", Some(1))),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            play_verification(&Step::Choose(1), None, long, &NoInteraction),
            Verification::Refused(Refusal::Denied)
        ));
    }
}
