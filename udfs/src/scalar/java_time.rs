//! Java `DateTimeFormatter` patterns (`yyyy-MM-dd'T'HH:mm:ss.SSSX`), which ksqlDB users write in
//! `TIMESTAMP_FORMAT` and the date functions: parsed once into items, then used to format and
//! parse instants with Java's field widths and zone rules.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// One element of a pattern.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    Literal(String),
    Year(usize),
    Month(usize),
    Day(usize),
    DayOfYear(usize),
    Hour24(usize),
    Hour12(usize),
    Minute(usize),
    Second(usize),
    Fraction(usize),
    AmPm,
    DayName(usize),
    ZoneName,
    ZoneOffsetX(usize),
    ZoneOffsetZ,
    ZoneId,
}

impl Item {
    fn is_numeric(&self) -> bool {
        matches!(
            self,
            Item::Year(_)
                | Item::Month(1..=2)
                | Item::Day(_)
                | Item::DayOfYear(_)
                | Item::Hour24(_)
                | Item::Hour12(_)
                | Item::Minute(_)
                | Item::Second(_)
                | Item::Fraction(_)
        )
    }
}

/// A compiled Java date-time pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct JavaFormat {
    items: Vec<Item>,
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

impl JavaFormat {
    /// Compiles a pattern; unknown letters are an error, as in Java.
    pub fn new(pattern: &str) -> Result<Self, String> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut items = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '\'' {
                // Quoted literal; '' is a single quote.
                let mut lit = String::new();
                i += 1;
                if i < chars.len() && chars[i] == '\'' {
                    items.push(Item::Literal("'".into()));
                    i += 1;
                    continue;
                }
                while i < chars.len() {
                    if chars[i] == '\'' {
                        if i + 1 < chars.len() && chars[i + 1] == '\'' {
                            lit.push('\'');
                            i += 2;
                            continue;
                        }
                        i += 1;
                        break;
                    }
                    lit.push(chars[i]);
                    i += 1;
                }
                items.push(Item::Literal(lit));
                continue;
            }
            if !c.is_ascii_alphabetic() {
                items.push(Item::Literal(c.to_string()));
                i += 1;
                continue;
            }
            let mut n = 1;
            while i + n < chars.len() && chars[i + n] == c {
                n += 1;
            }
            i += n;
            items.push(match c {
                'y' | 'u' | 'Y' => Item::Year(n),
                'M' | 'L' => Item::Month(n),
                'd' => Item::Day(n),
                'D' => Item::DayOfYear(n),
                'H' | 'k' => Item::Hour24(n),
                'h' | 'K' => Item::Hour12(n),
                'm' => Item::Minute(n),
                's' => Item::Second(n),
                'S' | 'n' => Item::Fraction(n),
                'a' => Item::AmPm,
                'E' | 'e' => Item::DayName(n),
                'z' | 'v' => Item::ZoneName,
                'X' | 'x' => Item::ZoneOffsetX(n),
                'Z' | 'O' => Item::ZoneOffsetZ,
                'V' => Item::ZoneId,
                other => return Err(format!("unknown pattern letter '{other}' in '{pattern}'")),
            });
        }
        Ok(JavaFormat { items })
    }

    /// Formats an instant (milliseconds since the epoch) in a zone.
    pub fn format_millis(&self, millis: i64, tz: &Tz) -> Result<String, String> {
        let utc = DateTime::<Utc>::from_timestamp_millis(millis)
            .ok_or_else(|| format!("timestamp {millis} is out of range"))?;
        Ok(self.format(&utc.with_timezone(tz)))
    }

    /// Formats a zoned date-time.
    pub fn format(&self, dt: &DateTime<Tz>) -> String {
        let mut out = String::new();
        for item in &self.items {
            match item {
                Item::Literal(s) => out.push_str(s),
                Item::Year(2) => out.push_str(&format!("{:02}", dt.year().rem_euclid(100))),
                Item::Year(n) => out.push_str(&format!("{:0width$}", dt.year(), width = *n)),
                Item::Month(n) if *n >= 4 => out.push_str(MONTHS[dt.month0() as usize]),
                Item::Month(3) => out.push_str(&MONTHS[dt.month0() as usize][..3]),
                Item::Month(n) => out.push_str(&format!("{:0width$}", dt.month(), width = *n)),
                Item::Day(n) => out.push_str(&format!("{:0width$}", dt.day(), width = *n)),
                Item::DayOfYear(n) => {
                    out.push_str(&format!("{:0width$}", dt.ordinal(), width = *n))
                }
                Item::Hour24(n) => out.push_str(&format!("{:0width$}", dt.hour(), width = *n)),
                Item::Hour12(n) => {
                    let h = dt.hour() % 12;
                    out.push_str(&format!(
                        "{:0width$}",
                        if h == 0 { 12 } else { h },
                        width = *n
                    ))
                }
                Item::Minute(n) => out.push_str(&format!("{:0width$}", dt.minute(), width = *n)),
                Item::Second(n) => out.push_str(&format!("{:0width$}", dt.second(), width = *n)),
                Item::Fraction(n) => {
                    let nanos = format!("{:09}", dt.nanosecond() % 1_000_000_000);
                    let n = (*n).min(9);
                    out.push_str(&nanos[..n]);
                }
                Item::AmPm => out.push_str(if dt.hour() < 12 { "AM" } else { "PM" }),
                Item::DayName(n) => {
                    let d = DAYS[dt.weekday().num_days_from_monday() as usize];
                    out.push_str(if *n >= 4 { d } else { &d[..3] })
                }
                Item::ZoneName => out.push_str(&dt.format("%Z").to_string()),
                Item::ZoneId => out.push_str(dt.timezone().name()),
                Item::ZoneOffsetX(n) => {
                    let secs = dt.offset().fix().local_minus_utc();
                    if secs == 0 {
                        out.push('Z');
                    } else {
                        out.push_str(&offset_text(secs, *n >= 3, *n == 1));
                    }
                }
                Item::ZoneOffsetZ => out.push_str(&offset_text(
                    dt.offset().fix().local_minus_utc(),
                    false,
                    false,
                )),
            }
        }
        out
    }

    /// Parses text into milliseconds since the epoch; `default_tz` applies when the pattern has no
    /// zone.
    pub fn parse_millis(&self, text: &str, default_tz: &Tz) -> Result<i64, String> {
        let mut p = Parsed::default();
        let chars: Vec<char> = text.chars().collect();
        let mut pos = 0usize;
        for (idx, item) in self.items.iter().enumerate() {
            let next_numeric = self.items.get(idx + 1).is_some_and(Item::is_numeric);
            match item {
                Item::Literal(s) => {
                    for lc in s.chars() {
                        if chars.get(pos) != Some(&lc) {
                            return Err(format!(
                                "'{text}' does not match the pattern at position {pos}"
                            ));
                        }
                        pos += 1;
                    }
                }
                Item::Year(n) => {
                    let (v, used) = if *n == 2 {
                        read_digits(&chars, pos, 2, 2)?
                    } else {
                        read_signed(&chars, pos, *n, if next_numeric { *n } else { 9 })?
                    };
                    pos += used;
                    p.year = Some(if *n == 2 { 2000 + v } else { v });
                }
                Item::Month(n) if *n >= 3 => {
                    let rest: String = chars[pos..].iter().collect();
                    let (m, used) = MONTHS
                        .iter()
                        .enumerate()
                        .find_map(|(i, name)| {
                            let cand = if *n == 3 { &name[..3] } else { name };
                            rest.to_lowercase()
                                .starts_with(&cand.to_lowercase())
                                .then_some((i as i64 + 1, cand.chars().count()))
                        })
                        .ok_or_else(|| {
                            format!("'{text}': expected a month name at position {pos}")
                        })?;
                    pos += used;
                    p.month = Some(m);
                }
                Item::Month(n) => {
                    let (v, used) = read_field(&chars, pos, *n, next_numeric)?;
                    pos += used;
                    p.month = Some(v);
                }
                Item::Day(n) => {
                    let (v, used) = read_field(&chars, pos, *n, next_numeric)?;
                    pos += used;
                    p.day = Some(v);
                }
                Item::DayOfYear(n) => {
                    let (v, used) = read_field(&chars, pos, *n, next_numeric)?;
                    pos += used;
                    p.day_of_year = Some(v);
                }
                Item::Hour24(n) | Item::Hour12(n) => {
                    let (v, used) = read_field(&chars, pos, *n, next_numeric)?;
                    pos += used;
                    p.hour = Some(v);
                    p.hour12 = matches!(item, Item::Hour12(_));
                }
                Item::Minute(n) => {
                    let (v, used) = read_field(&chars, pos, *n, next_numeric)?;
                    pos += used;
                    p.minute = Some(v);
                }
                Item::Second(n) => {
                    let (v, used) = read_field(&chars, pos, *n, next_numeric)?;
                    pos += used;
                    p.second = Some(v);
                }
                Item::Fraction(n) => {
                    let (v, used) = read_digits(&chars, pos, *n, *n)?;
                    pos += used;
                    p.nanos = Some(v * 10i64.pow(9 - (*n).min(9) as u32));
                }
                Item::AmPm => {
                    let rest: String = chars[pos..]
                        .iter()
                        .take(2)
                        .collect::<String>()
                        .to_uppercase();
                    p.pm = Some(match rest.as_str() {
                        "AM" => false,
                        "PM" => true,
                        _ => return Err(format!("'{text}': expected AM or PM at position {pos}")),
                    });
                    pos += 2;
                }
                Item::DayName(n) => {
                    let rest: String = chars[pos..].iter().collect::<String>().to_lowercase();
                    let used = DAYS
                        .iter()
                        .find_map(|d| {
                            let cand = if *n >= 4 { *d } else { &d[..3] };
                            rest.starts_with(&cand.to_lowercase()).then_some(cand.len())
                        })
                        .ok_or_else(|| {
                            format!("'{text}': expected a day name at position {pos}")
                        })?;
                    pos += used;
                }
                Item::ZoneName | Item::ZoneId => {
                    let rest: String = chars[pos..].iter().collect();
                    let end = rest
                        .find(|c: char| {
                            !(c.is_alphanumeric() || c == '/' || c == '_' || c == '+' || c == '-')
                        })
                        .unwrap_or(rest.len());
                    let name = &rest[..end];
                    p.zone =
                        Some(Zone::Named(zone_by_name(name).ok_or_else(|| {
                            format!("'{text}': unknown time zone '{name}'")
                        })?));
                    pos += name.chars().count();
                }
                Item::ZoneOffsetX(_) | Item::ZoneOffsetZ => {
                    let (secs, used) = read_offset(&chars, pos).ok_or_else(|| {
                        format!("'{text}': expected a zone offset at position {pos}")
                    })?;
                    pos += used;
                    p.zone = Some(Zone::Offset(secs));
                }
            }
        }
        if pos != chars.len() {
            return Err(format!("'{text}' has unparsed text at position {pos}"));
        }
        p.to_millis(default_tz)
            .ok_or_else(|| format!("'{text}' is not a valid date-time"))
    }
}

fn offset_text(secs: i32, colon: bool, hours_only: bool) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let a = secs.abs();
    let (h, m) = (a / 3600, (a % 3600) / 60);
    if hours_only && m == 0 {
        format!("{sign}{h:02}")
    } else if colon {
        format!("{sign}{h:02}:{m:02}")
    } else {
        format!("{sign}{h:02}{m:02}")
    }
}

fn read_field(
    chars: &[char],
    pos: usize,
    n: usize,
    next_numeric: bool,
) -> Result<(i64, usize), String> {
    if next_numeric {
        read_digits(chars, pos, n, n)
    } else {
        read_digits(chars, pos, n.min(1), 9.max(n))
    }
}

fn read_digits(chars: &[char], pos: usize, min: usize, max: usize) -> Result<(i64, usize), String> {
    let mut v: i64 = 0;
    let mut used = 0;
    while used < max && pos + used < chars.len() && chars[pos + used].is_ascii_digit() {
        v = v * 10 + chars[pos + used].to_digit(10).unwrap_or(0) as i64;
        used += 1;
    }
    if used < min.max(1) {
        return Err(format!(
            "expected {} digit(s) at position {pos}",
            min.max(1)
        ));
    }
    Ok((v, used))
}

fn read_signed(chars: &[char], pos: usize, min: usize, max: usize) -> Result<(i64, usize), String> {
    match chars.get(pos) {
        Some('-') => read_digits(chars, pos + 1, min, max).map(|(v, u)| (-v, u + 1)),
        Some('+') => read_digits(chars, pos + 1, min, max).map(|(v, u)| (v, u + 1)),
        _ => read_digits(chars, pos, min, max),
    }
}

fn read_offset(chars: &[char], pos: usize) -> Option<(i32, usize)> {
    match chars.get(pos)? {
        'Z' | 'z' => Some((0, 1)),
        c @ ('+' | '-') => {
            let sign = if *c == '-' { -1 } else { 1 };
            let digit = |i: usize| chars.get(i).and_then(|c| c.to_digit(10)).map(|d| d as i32);
            let h = digit(pos + 1)? * 10 + digit(pos + 2)?;
            let mut used = 3;
            let mut m = 0;
            let mut p = pos + 3;
            if chars.get(p) == Some(&':') {
                p += 1;
            }
            if let (Some(a), Some(b)) = (digit(p), digit(p + 1)) {
                m = a * 10 + b;
                used = p + 2 - pos;
            }
            Some((sign * (h * 3600 + m * 60), used))
        }
        _ => None,
    }
}

/// Resolves a zone id (`Europe/London`), an abbreviation Java understands (`PST`, `BST`) or a
/// fixed offset (`+05:30`, `UTC`).
pub fn zone_by_name(name: &str) -> Option<Tz> {
    if let Ok(tz) = name.parse::<Tz>() {
        return Some(tz);
    }
    let id = match name.to_ascii_uppercase().as_str() {
        "Z" | "UTC" | "GMT" | "UT" => "UTC",
        "PST" | "PDT" | "PT" => "America/Los_Angeles",
        "MST" | "MDT" => "America/Denver",
        "CST" | "CDT" => "America/Chicago",
        "EST" | "EDT" => "America/New_York",
        "BST" => "Europe/London",
        "CET" | "CEST" => "Europe/Paris",
        "EET" | "EEST" => "Europe/Athens",
        "IST" => "Asia/Kolkata",
        "JST" => "Asia/Tokyo",
        "AEST" | "AEDT" => "Australia/Sydney",
        _ => return None,
    };
    id.parse().ok()
}

#[derive(Debug, Clone, Copy)]
enum Zone {
    Named(Tz),
    Offset(i32),
}

#[derive(Debug, Default)]
struct Parsed {
    year: Option<i64>,
    month: Option<i64>,
    day: Option<i64>,
    day_of_year: Option<i64>,
    hour: Option<i64>,
    hour12: bool,
    pm: Option<bool>,
    minute: Option<i64>,
    second: Option<i64>,
    nanos: Option<i64>,
    zone: Option<Zone>,
}

impl Parsed {
    fn to_millis(&self, default_tz: &Tz) -> Option<i64> {
        let year = self.year.unwrap_or(1970) as i32;
        let date = match self.day_of_year {
            Some(doy) if self.month.is_none() => NaiveDate::from_yo_opt(year, doy as u32)?,
            _ => NaiveDate::from_ymd_opt(
                year,
                self.month.unwrap_or(1) as u32,
                self.day.unwrap_or(1) as u32,
            )?,
        };
        let mut hour = self.hour.unwrap_or(0);
        if self.hour12 || self.pm.is_some() {
            hour %= 12;
            if self.pm == Some(true) {
                hour += 12;
            }
        }
        let naive: NaiveDateTime = date.and_hms_nano_opt(
            hour as u32,
            self.minute.unwrap_or(0) as u32,
            self.second.unwrap_or(0) as u32,
            self.nanos.unwrap_or(0) as u32,
        )?;
        let millis = match self.zone {
            Some(Zone::Offset(secs)) => naive.and_utc().timestamp_millis() - secs as i64 * 1000,
            Some(Zone::Named(tz)) => tz
                .from_local_datetime(&naive)
                .earliest()?
                .timestamp_millis(),
            None => default_tz
                .from_local_datetime(&naive)
                .earliest()?
                .timestamp_millis(),
        };
        Some(millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc() -> Tz {
        "UTC".parse().unwrap()
    }

    #[test]
    fn parses_ksql_patterns() {
        let f = JavaFormat::new("yyyy-MM-dd'T'HH:mm:ss").unwrap();
        assert_eq!(
            f.parse_millis("2018-05-11T21:58:33", &utc()).unwrap(),
            1526075913000
        );
        let f = JavaFormat::new("yyyy-MM-dd'T'HH:mm:ss zzz").unwrap();
        assert_eq!(
            f.parse_millis("2018-05-11T21:58:33 PST", &utc()).unwrap(),
            1526101113000
        );
        let f = JavaFormat::new("yy-MM-dd HH:mm:ssX").unwrap();
        assert_eq!(
            f.parse_millis("10-04-19 12:00:17Z", &utc()).unwrap(),
            1271678417000
        );
        let f = JavaFormat::new("yyyy-MM-dd'T'HH:mm:ss.SX").unwrap();
        assert_eq!(
            f.parse_millis("2019-08-27T13:31:09.2+0000", &utc())
                .unwrap(),
            1566912669200
        );
        let f = JavaFormat::new("yyyyMMdd").unwrap();
        assert_eq!(f.parse_millis("20200101", &utc()).unwrap(), 1577836800000);
        assert!(f.parse_millis("not a date", &utc()).is_err());
    }

    #[test]
    fn formats_with_zone_names() {
        let f = JavaFormat::new("yyyy-MM-dd HH:mm:ss zzz").unwrap();
        let london: Tz = "Europe/London".parse().unwrap();
        assert_eq!(
            f.format_millis(1526075913000, &london).unwrap(),
            "2018-05-11 22:58:33 BST"
        );
        let f = JavaFormat::new("yyyy-MM-dd HH:mm:ss.SSS").unwrap();
        assert_eq!(
            f.format_millis(1526075913042, &utc()).unwrap(),
            "2018-05-11 21:58:33.042"
        );
    }
}
