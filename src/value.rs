//! Numbers recorded from tracing fields, and their conversion to what an instrument takes.
//!
//! Every conversion either gives a value the instrument records exactly as the docs say, or a
//! [`DropReason`] that is counted in `dchat_telemetry_values_dropped_total{metric,reason}`.

use crate::limits::MAX_INCREMENT;

/// A numeric field value as tracing hands it over.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Num {
    U64(u64),
    I64(i64),
    F64(f64),
}

/// Why a value was not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum DropReason {
    /// Negative value for a monotonic counter.
    Negative,
    /// NaN or an infinity.
    NotFinite,
    /// Does not fit the instrument's number type (e.g. a fraction for an integer counter).
    OutOfRange,
    /// Not a number at all (a bool, or a string that does not parse).
    WrongType,
    /// The field names an instrument that already exists with another kind.
    KindConflict,
}

impl DropReason {
    pub(crate) const ALL: [DropReason; 5] = [
        DropReason::Negative,
        DropReason::NotFinite,
        DropReason::OutOfRange,
        DropReason::WrongType,
        DropReason::KindConflict,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DropReason::Negative => "negative",
            DropReason::NotFinite => "not_finite",
            DropReason::OutOfRange => "out_of_range",
            DropReason::WrongType => "wrong_type",
            DropReason::KindConflict => "kind_conflict",
        }
    }
}

impl Num {
    /// A 128-bit integer as the nearest kept form: exact when it fits 64 bits; otherwise a
    /// float, which every integer instrument rejects as out of range (counters take at most
    /// [`MAX_INCREMENT`]) and float instruments take as they would have. Keeps `Num` two words.
    pub(crate) fn from_i128(v: i128) -> Num {
        match i64::try_from(v) {
            Ok(v) => Num::I64(v),
            Err(_) => Num::F64(v as f64),
        }
    }

    /// See [`Num::from_i128`].
    pub(crate) fn from_u128(v: u128) -> Num {
        match u64::try_from(v) {
            Ok(v) => Num::U64(v),
            Err(_) => Num::F64(v as f64),
        }
    }

    /// Parses a string field (`count = "3"`, or a `Display` value) as a number.
    pub(crate) fn parse(s: &str) -> Result<Num, DropReason> {
        let s = s.trim();
        if let Ok(v) = s.parse::<u64>() {
            return Ok(Num::U64(v));
        }
        if let Ok(v) = s.parse::<i64>() {
            return Ok(Num::I64(v));
        }
        s.parse::<f64>()
            .map(Num::F64)
            .map_err(|_| DropReason::WrongType)
    }

    /// Multiplies by `scale` (1.0 keeps integers integral).
    pub(crate) fn scaled(self, scale: f64) -> Num {
        if scale == 1.0 {
            self
        } else {
            Num::F64(self.as_f64() * scale)
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Num::U64(v) => v as f64,
            Num::I64(v) => v as f64,
            Num::F64(v) => v,
        }
    }

    /// For a `u64` counter: non-negative integers up to [`MAX_INCREMENT`].
    #[inline]
    pub(crate) fn to_counter_u64(self) -> Result<u64, DropReason> {
        let v = self.to_any_counter_u64()?;
        if v > MAX_INCREMENT {
            Err(DropReason::OutOfRange)
        } else {
            Ok(v)
        }
    }

    fn to_any_counter_u64(self) -> Result<u64, DropReason> {
        match self {
            Num::U64(v) => Ok(v),
            Num::I64(v) => u64::try_from(v).map_err(|_| DropReason::Negative),
            Num::F64(v) if !v.is_finite() => Err(DropReason::NotFinite),
            Num::F64(v) if v < 0.0 => Err(DropReason::Negative),
            // `u64::MAX as f64` rounds up to 2^64, so the bound is exclusive.
            Num::F64(v) if v.fract() != 0.0 || v >= u64::MAX as f64 => Err(DropReason::OutOfRange),
            Num::F64(v) => Ok(v as u64),
        }
    }

    /// For a `f64` counter: finite and non-negative.
    pub(crate) fn to_counter_f64(self) -> Result<f64, DropReason> {
        let v = self.to_f64()?;
        if v < 0.0 {
            Err(DropReason::Negative)
        } else {
            Ok(v)
        }
    }

    /// For histograms and gauges: any finite value.
    pub(crate) fn to_f64(self) -> Result<f64, DropReason> {
        let v = self.as_f64();
        if v.is_finite() {
            Ok(v)
        } else {
            Err(DropReason::NotFinite)
        }
    }

    /// For up-down counters: an integer that fits `i64`.
    pub(crate) fn to_i64(self) -> Result<i64, DropReason> {
        match self {
            Num::U64(v) => i64::try_from(v).map_err(|_| DropReason::OutOfRange),
            Num::I64(v) => Ok(v),
            Num::F64(v) if !v.is_finite() => Err(DropReason::NotFinite),
            // `i64::MIN as f64` is exact (-2^63) but also where values just below it round to
            // (a 128-bit integer under i64::MIN, say): both bounds are exclusive.
            Num::F64(v) if v.fract() != 0.0 || v <= i64::MIN as f64 || v >= i64::MAX as f64 => {
                Err(DropReason::OutOfRange)
            }
            Num::F64(v) => Ok(v as i64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_conversions() {
        assert_eq!(Num::U64(MAX_INCREMENT).to_counter_u64(), Ok(MAX_INCREMENT));
        assert_eq!(
            Num::U64(MAX_INCREMENT + 1).to_counter_u64(),
            Err(DropReason::OutOfRange)
        );
        assert_eq!(
            Num::U64(u64::MAX).to_counter_u64(),
            Err(DropReason::OutOfRange)
        );
        assert_eq!(Num::I64(-1).to_counter_u64(), Err(DropReason::Negative));
        assert_eq!(
            Num::F64(f64::NAN).to_counter_u64(),
            Err(DropReason::NotFinite)
        );
        assert_eq!(Num::F64(2.5).to_counter_u64(), Err(DropReason::OutOfRange));
        assert_eq!(Num::F64(3.0).to_counter_u64(), Ok(3));
        assert_eq!(
            Num::F64(1e300).to_counter_u64(),
            Err(DropReason::OutOfRange)
        );
        assert_eq!(
            Num::from_i128(-5).to_counter_u64(),
            Err(DropReason::Negative)
        );
        assert_eq!(Num::from_i128(5).to_counter_u64(), Ok(5));
        assert_eq!(
            Num::from_u128(u128::MAX).to_counter_u64(),
            Err(DropReason::OutOfRange)
        );
        assert_eq!(
            Num::from_i128(i128::MIN).to_i64(),
            Err(DropReason::OutOfRange)
        );
        assert_eq!(
            Num::from_i128(i128::from(i64::MIN) - 1).to_i64(),
            Err(DropReason::OutOfRange)
        );
        assert_eq!(Num::from_i128(i128::from(i64::MIN)).to_i64(), Ok(i64::MIN));
        assert_eq!(Num::from_u128(1 << 100).to_f64(), Ok(2f64.powi(100)));
        assert_eq!(Num::F64(-0.5).to_counter_f64(), Err(DropReason::Negative));
        assert_eq!(Num::F64(f64::INFINITY).to_f64(), Err(DropReason::NotFinite));
        assert_eq!(Num::U64(u64::MAX).to_i64(), Err(DropReason::OutOfRange));
        assert_eq!(Num::F64(-2.0).to_i64(), Ok(-2));
    }

    #[test]
    fn parsing_and_scaling() {
        assert_eq!(Num::parse(" 7 "), Ok(Num::U64(7)));
        assert_eq!(Num::parse("-7"), Ok(Num::I64(-7)));
        assert_eq!(Num::parse("0.5"), Ok(Num::F64(0.5)));
        assert_eq!(Num::parse("seven"), Err(DropReason::WrongType));
        assert_eq!(Num::U64(250).scaled(0.001), Num::F64(0.25));
        assert_eq!(Num::U64(3).scaled(1.0), Num::U64(3));
    }
}
