//! Network UPS Tools vocabulary: notify types and `ups.status` tokens.
//!
//! Unknown notify types and tokens are kept verbatim and shown, never an error:
//! NUT keeps adding them (2.8.1 to 2.8.5 added twenty).

use serde::{Deserialize, Serialize};
use std::fmt;

/// A NUT `NOTIFYTYPE`, as upsmon hands it to the NOTIFYCMD.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum NotifyType {
    Online,
    OnBatt,
    LowBatt,
    Fsd,
    CommOk,
    CommBad,
    Shutdown,
    ReplBatt,
    NoComm,
    NoParent,
    /// A type this version does not interpret (CAL, BYPASS, ECO, a future one...), kept as sent.
    Other(String),
}

impl NotifyType {
    pub fn parse(text: &str) -> NotifyType {
        match text.trim().to_ascii_uppercase().as_str() {
            "ONLINE" => NotifyType::Online,
            "ONBATT" => NotifyType::OnBatt,
            "LOWBATT" => NotifyType::LowBatt,
            "FSD" => NotifyType::Fsd,
            "COMMOK" => NotifyType::CommOk,
            "COMMBAD" => NotifyType::CommBad,
            "SHUTDOWN" => NotifyType::Shutdown,
            "REPLBATT" => NotifyType::ReplBatt,
            "NOCOMM" => NotifyType::NoComm,
            "NOPARENT" => NotifyType::NoParent,
            other => NotifyType::Other(other.to_string()),
        }
    }

    /// `burst-agent test`'s type: recorded and shown, never a line in a live incident.
    pub fn is_test(&self) -> bool {
        matches!(self, NotifyType::Other(t) if t == "TEST")
    }

    pub fn as_str(&self) -> &str {
        match self {
            NotifyType::Online => "ONLINE",
            NotifyType::OnBatt => "ONBATT",
            NotifyType::LowBatt => "LOWBATT",
            NotifyType::Fsd => "FSD",
            NotifyType::CommOk => "COMMOK",
            NotifyType::CommBad => "COMMBAD",
            NotifyType::Shutdown => "SHUTDOWN",
            NotifyType::ReplBatt => "REPLBATT",
            NotifyType::NoComm => "NOCOMM",
            NotifyType::NoParent => "NOPARENT",
            NotifyType::Other(s) => s,
        }
    }
}

impl fmt::Display for NotifyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for NotifyType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for NotifyType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(NotifyType::parse(&s))
    }
}

/// The space-separated `ups.status` value, split into tokens (order kept, any order accepted).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct UpsStatus(Vec<String>);

/// What the status tokens say about mains power.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerReading {
    /// `OL` and not `OB`.
    OnLine,
    /// `OB` (on battery), optionally low (`LB`) or forced shutdown (`FSD`).
    OnBattery { low: bool, fsd: bool },
    /// `FSD` without `OB`: upsd latched a forced shutdown.
    ForcedShutdown,
    /// Nothing to go on (empty status, `WAIT`, only unrelated tokens).
    Unknown,
}

impl UpsStatus {
    pub fn parse(text: &str) -> UpsStatus {
        UpsStatus(
            text.split_ascii_whitespace()
                .map(|t| t.to_ascii_uppercase())
                .collect(),
        )
    }

    pub fn tokens(&self) -> &[String] {
        &self.0
    }

    pub fn has(&self, token: &str) -> bool {
        self.0.iter().any(|t| t == token)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Tokens this version does not know (kept and shown, never an error).
    pub fn unknown_tokens(&self) -> Vec<&str> {
        const KNOWN: &[&str] = &[
            "OL", "OB", "LB", "HB", "RB", "CHRG", "DISCHRG", "BYPASS", "CAL", "OFF", "OVER",
            "TRIM", "BOOST", "FSD", "ALARM", "ECO", "WAIT",
        ];
        self.0
            .iter()
            .map(String::as_str)
            .filter(|t| !KNOWN.contains(t))
            .collect()
    }

    pub fn power(&self) -> PowerReading {
        let fsd = self.has("FSD");
        if self.has("OB") {
            PowerReading::OnBattery {
                low: self.has("LB"),
                fsd,
            }
        } else if fsd {
            PowerReading::ForcedShutdown
        } else if self.has("OL") {
            PowerReading::OnLine
        } else {
            PowerReading::Unknown
        }
    }
}

impl fmt::Display for UpsStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

impl Serialize for UpsStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.join(" "))
    }
}

impl<'de> Deserialize<'de> for UpsStatus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(UpsStatus::parse(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_types_round_trip_and_unknown_kept() {
        for t in [
            "ONLINE", "ONBATT", "LOWBATT", "FSD", "COMMOK", "COMMBAD", "SHUTDOWN", "REPLBATT",
            "NOCOMM", "NOPARENT",
        ] {
            assert_eq!(NotifyType::parse(t).as_str(), t);
            assert!(!matches!(NotifyType::parse(t), NotifyType::Other(_)), "{t}");
        }
        assert_eq!(
            NotifyType::parse("suspend_starting"),
            NotifyType::Other("SUSPEND_STARTING".into())
        );
    }

    #[test]
    fn status_tokens_in_any_order() {
        assert_eq!(
            UpsStatus::parse("LB DISCHRG OB").power(),
            PowerReading::OnBattery {
                low: true,
                fsd: false
            }
        );
        assert_eq!(UpsStatus::parse("OL CHRG").power(), PowerReading::OnLine);
        assert_eq!(
            UpsStatus::parse("FSD OL").power(),
            PowerReading::ForcedShutdown
        );
        assert_eq!(UpsStatus::parse("").power(), PowerReading::Unknown);
        assert_eq!(UpsStatus::parse("WAIT").power(), PowerReading::Unknown);
        let s = UpsStatus::parse("OL NEWTOKEN");
        assert_eq!(s.unknown_tokens(), vec!["NEWTOKEN"]);
        assert_eq!(s.to_string(), "OL NEWTOKEN");
    }
}
