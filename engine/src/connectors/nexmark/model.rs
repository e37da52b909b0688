//! The Nexmark event model: which kind each event id is, the ids it carries and how its fields
//! are drawn, following `../shared/nexmark/GENERATOR.md` (the Beam/Flink generator's rules).
//! Everything here is a pure function of the event number and one random stream, so the same
//! seed gives the same events whatever the batch sizes.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use riffle_sql::catalog::NexmarkOptions;

/// Person ids start here.
pub const FIRST_PERSON_ID: i64 = 1000;
/// Auction ids start here.
pub const FIRST_AUCTION_ID: i64 = 1000;
/// Categories are numbered from here.
pub const FIRST_CATEGORY_ID: i64 = 10;
const NUM_CATEGORIES: u64 = 5;
const IN_FLIGHT_AUCTIONS: i64 = 100;
const ACTIVE_PEOPLE: i64 = 1000;
const PERSON_ID_LEAD: i64 = 10;
const AUCTION_ID_LEAD: i64 = 10;
const HOT_AUCTION_RATIO: u64 = 2;
const HOT_SELLER_RATIO: u64 = 4;
const HOT_BIDDER_RATIO: u64 = 4;
const HOT_CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];
const COLD_CHANNELS: usize = 10_000;
const FIRST_NAMES: [&str; 11] = [
    "Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter",
];
const LAST_NAMES: [&str; 9] = [
    "Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris",
];
/// Cities a person lives in.
pub const CITIES: [&str; 10] = [
    "Phoenix",
    "Los Angeles",
    "San Francisco",
    "Boise",
    "Portland",
    "Bend",
    "Redmond",
    "Seattle",
    "Kent",
    "Cheyenne",
];
/// States a person lives in.
pub const STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];
const PADDING_POOL: usize = 1 << 20;
const PERSON_BYTES: i64 = 200;
const AUCTION_BYTES: i64 = 500;
const BID_BYTES: i64 = 100;

/// Which of the three kinds an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A new person.
    Person = 0,
    /// A new auction.
    Auction = 1,
    /// A bid on an auction.
    Bid = 2,
}

/// The deterministic part of the generator: kinds, ids and event time.
#[derive(Debug, Clone)]
pub struct EventLayout {
    person: i64,
    auction: i64,
    total: i64,
    rate: u64,
    base_time_ms: i64,
}

impl EventLayout {
    /// The layout for these options.
    pub fn new(o: &NexmarkOptions) -> Self {
        EventLayout {
            person: o.person_proportion as i64,
            auction: o.auction_proportion as i64,
            total: (o.person_proportion + o.auction_proportion + o.bid_proportion) as i64,
            rate: o.rate.max(1),
            base_time_ms: o.base_time_ms,
        }
    }

    /// The kind of event number `n`.
    pub fn kind(&self, n: u64) -> EventKind {
        let rem = n as i64 % self.total;
        if rem < self.person {
            EventKind::Person
        } else if rem < self.person + self.auction {
            EventKind::Auction
        } else {
            EventKind::Bid
        }
    }

    /// Event time of event number `n`: the rate sets how many events share a millisecond.
    pub fn timestamp(&self, n: u64) -> i64 {
        self.base_time_ms + ((n as u128 * 1000) / self.rate as u128) as i64
    }

    /// Zero-based id of the newest person at event `n`.
    pub fn last_person(&self, n: u64) -> i64 {
        let n = n as i64;
        let epoch = n / self.total;
        let off = (n % self.total).min(self.person - 1).max(0);
        epoch * self.person + off
    }

    /// Zero-based id of the newest auction at event `n`.
    pub fn last_auction(&self, n: u64) -> i64 {
        let n = n as i64;
        let mut epoch = n / self.total;
        let off = n % self.total;
        let off = if off < self.person {
            epoch -= 1;
            self.auction - 1
        } else if off >= self.person + self.auction {
            self.auction - 1
        } else {
            off - self.person
        };
        epoch * self.auction + off
    }

    /// Milliseconds of event time spanned by `events` events.
    pub fn span_ms(&self, events: u64) -> i64 {
        ((events as u128 * 1000) / self.rate as u128) as i64
    }
}

/// One person event's fields.
pub struct Person<'a> {
    /// Person id.
    pub id: i64,
    /// "First Last".
    pub name: String,
    /// Email address.
    pub email: String,
    /// "dddd dddd dddd dddd".
    pub credit_card: String,
    /// City.
    pub city: &'static str,
    /// State.
    pub state: &'static str,
    /// Padding to the average size.
    pub extra: &'a str,
}

/// One auction event's fields.
pub struct Auction<'a> {
    /// Auction id.
    pub id: i64,
    /// Item name.
    pub item_name: String,
    /// Description.
    pub description: String,
    /// Opening price in cents.
    pub initial_bid: i64,
    /// Reserve price in cents.
    pub reserve: i64,
    /// When the auction closes (epoch ms).
    pub expires: i64,
    /// Seller's person id.
    pub seller: i64,
    /// Category id.
    pub category: i64,
    /// Padding to the average size.
    pub extra: &'a str,
}

/// One bid event's fields.
pub struct Bid<'a> {
    /// Auction bid on.
    pub auction: i64,
    /// Bidder's person id.
    pub bidder: i64,
    /// Price in cents.
    pub price: i64,
    /// Channel name.
    pub channel: &'a str,
    /// Referring URL.
    pub url: &'a str,
    /// Padding to the average size.
    pub extra: &'a str,
}

/// The random part of the generator: field values drawn from one seeded stream.
pub struct FieldSource {
    rng: ChaCha8Rng,
    padding: Vec<u8>,
    hot_urls: Vec<String>,
    cold_channels: Vec<String>,
    cold_urls: Vec<String>,
}

impl FieldSource {
    /// A field source seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let padding: Vec<u8> = (0..PADDING_POOL)
            .map(|_| b'a' + rng.random_range(0..26u8))
            .collect();
        let url = |rng: &mut ChaCha8Rng| {
            format!(
                "https://www.nexmark.com/{}/{}/{}/item.htm?query=1",
                random_string(rng, 5, b'_'),
                random_string(rng, 5, b'_'),
                random_string(rng, 5, b'_')
            )
        };
        let hot_urls = (0..HOT_CHANNELS.len()).map(|_| url(&mut rng)).collect();
        let mut cold_channels = Vec::with_capacity(COLD_CHANNELS);
        let mut cold_urls = Vec::with_capacity(COLD_CHANNELS);
        for k in 0..COLD_CHANNELS {
            cold_channels.push(format!("channel-{k}"));
            let mut u = url(&mut rng);
            if rng.random_range(0..10u32) > 0 {
                u.push_str(&format!(
                    "&channel_id={}",
                    (k as i32).reverse_bits().unsigned_abs()
                ));
            }
            cold_urls.push(u);
        }
        FieldSource {
            rng,
            padding,
            hot_urls,
            cold_channels,
            cold_urls,
        }
    }

    /// Restarts the random draws for block `block` of a generator seeded with `seed`: a block's
    /// events depend only on the seed and the block, not on what was generated before.
    pub fn reseed(&mut self, seed: u64, block: u64) {
        let mixed = (seed ^ 0xA076_1D64_78BD_642F)
            .wrapping_add(block.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        self.rng = ChaCha8Rng::seed_from_u64(mixed);
    }

    fn chance(&mut self, one_in: u64) -> bool {
        self.rng.random_range(0..one_in) == 0
    }

    fn price(&mut self) -> i64 {
        let u: f64 = self.rng.random();
        (10f64.powf(u * 6.0) * 100.0).round() as i64
    }

    fn padding(&mut self, used: i64, target: i64) -> &str {
        let range = self.padding_range(used, target);
        self.slice(range)
    }

    fn recent_person(&mut self, layout: &EventLayout, n: u64) -> i64 {
        let people = layout.last_person(n) + 1;
        let active = people.min(ACTIVE_PEOPLE);
        let pick = self.rng.random_range(0..(active + PERSON_ID_LEAD) as u64) as i64;
        people - active + pick
    }

    /// The person of event `n`.
    pub fn person(&mut self, layout: &EventLayout, n: u64) -> Person<'_> {
        let id = layout.last_person(n) + FIRST_PERSON_ID;
        let name = format!(
            "{} {}",
            FIRST_NAMES[self.rng.random_range(0..FIRST_NAMES.len())],
            LAST_NAMES[self.rng.random_range(0..LAST_NAMES.len())]
        );
        let email = format!(
            "{}@{}.com",
            random_string(&mut self.rng, 7, b' '),
            random_string(&mut self.rng, 5, b' ')
        );
        let credit_card = format!(
            "{:04} {:04} {:04} {:04}",
            self.rng.random_range(0..10_000u32),
            self.rng.random_range(0..10_000u32),
            self.rng.random_range(0..10_000u32),
            self.rng.random_range(0..10_000u32)
        );
        let city = CITIES[self.rng.random_range(0..CITIES.len())];
        let state = STATES[self.rng.random_range(0..STATES.len())];
        let used = 8 + name.len() + email.len() + credit_card.len() + city.len() + state.len() + 8;
        let extra = self.padding(used as i64, PERSON_BYTES);
        Person {
            id,
            name,
            email,
            credit_card,
            city,
            state,
            extra,
        }
    }

    /// The auction of event `n`.
    pub fn auction(&mut self, layout: &EventLayout, n: u64, timestamp: i64) -> Auction<'_> {
        let id = layout.last_auction(n) + FIRST_AUCTION_ID;
        let seller = if !self.chance(HOT_SELLER_RATIO) {
            (layout.last_person(n) / 100) * 100
        } else {
            self.recent_person(layout, n)
        } + FIRST_PERSON_ID;
        let category = FIRST_CATEGORY_ID + self.rng.random_range(0..NUM_CATEGORIES) as i64;
        let initial_bid = self.price();
        let reserve = initial_bid + self.price();
        let item_name = random_string(&mut self.rng, 20, b' ');
        let description = random_string(&mut self.rng, 100, b' ');
        let horizon = layout
            .span_ms((IN_FLIGHT_AUCTIONS * layout.total / layout.auction.max(1)) as u64)
            .max(0);
        let expires = timestamp + 1 + self.rng.random_range(0..(2 * horizon + 1) as u64) as i64;
        let used = 8 + item_name.len() + description.len() + 8 * 6;
        let extra = self.padding(used as i64, AUCTION_BYTES);
        Auction {
            id,
            item_name,
            description,
            initial_bid,
            reserve,
            expires,
            seller,
            category,
            extra,
        }
    }

    /// The bid of event `n`.
    pub fn bid(&mut self, layout: &EventLayout, n: u64) -> Bid<'_> {
        let last = layout.last_auction(n);
        let auction = if !self.chance(HOT_AUCTION_RATIO) {
            (last.max(0) / 100) * 100
        } else {
            let lo = (last - IN_FLIGHT_AUCTIONS).max(0);
            let hi = last.max(0) + AUCTION_ID_LEAD;
            self.rng.random_range(lo..=hi)
        } + FIRST_AUCTION_ID;
        let bidder = if !self.chance(HOT_BIDDER_RATIO) {
            (layout.last_person(n) / 100) * 100 + 1
        } else {
            self.recent_person(layout, n)
        } + 2 * FIRST_PERSON_ID;
        let price = self.price();
        let (channel_idx, hot) = if self.chance(2) {
            (self.rng.random_range(0..HOT_CHANNELS.len()), true)
        } else {
            (self.rng.random_range(0..COLD_CHANNELS), false)
        };
        let d = {
            let (c, u) = if hot {
                (
                    HOT_CHANNELS[channel_idx].len(),
                    self.hot_urls[channel_idx].len(),
                )
            } else {
                (
                    self.cold_channels[channel_idx].len(),
                    self.cold_urls[channel_idx].len(),
                )
            };
            (8 * 4 + c + u) as i64
        };
        let len_start = self.padding_range(d, BID_BYTES);
        let extra = self.slice(len_start);
        let (channel, url) = if hot {
            (
                HOT_CHANNELS[channel_idx],
                self.hot_urls[channel_idx].as_str(),
            )
        } else {
            (
                self.cold_channels[channel_idx].as_str(),
                self.cold_urls[channel_idx].as_str(),
            )
        };
        Bid {
            auction,
            bidder,
            price,
            channel,
            url,
            extra,
        }
    }

    fn padding_range(&mut self, used: i64, target: i64) -> (usize, usize) {
        let d = (target - used).max(0) as usize;
        let len = if d == 0 {
            0
        } else {
            let lo = d * 8 / 10;
            let hi = (d * 12 / 10).max(lo + 1);
            self.rng.random_range(lo..hi)
        };
        let start = self
            .rng
            .random_range(0..PADDING_POOL - len.min(PADDING_POOL - 1));
        (start, len)
    }

    fn slice(&self, (start, len): (usize, usize)) -> &str {
        std::str::from_utf8(&self.padding[start..start + len]).unwrap_or_default()
    }
}

/// A random string of 3 to `max` characters: lowercase letters, one in 13 being `special`,
/// trimmed of spaces.
fn random_string(rng: &mut ChaCha8Rng, max: usize, special: u8) -> String {
    let len = 3 + rng.random_range(0..max.saturating_sub(3).max(1));
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            if rng.random_range(0..13u32) == 0 {
                special
            } else {
                b'a' + rng.random_range(0..26u8)
            }
        })
        .collect();
    String::from_utf8(bytes)
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> EventLayout {
        EventLayout::new(&NexmarkOptions::default())
    }

    #[test]
    fn one_person_three_auctions_then_bids_in_every_fifty() {
        let l = layout();
        let kinds: Vec<EventKind> = (0..50).map(|n| l.kind(n)).collect();
        assert_eq!(kinds[0], EventKind::Person);
        assert!(kinds[1..4].iter().all(|k| *k == EventKind::Auction));
        assert!(kinds[4..].iter().all(|k| *k == EventKind::Bid));
        assert_eq!(l.kind(50), EventKind::Person);
    }

    #[test]
    fn ids_are_dense_and_grow_with_time() {
        let l = layout();
        assert_eq!(l.last_person(0), 0);
        assert_eq!(l.last_person(50), 1);
        assert_eq!(l.last_auction(1), 0);
        assert_eq!(l.last_auction(3), 2);
        assert_eq!(l.last_auction(49), 2);
        assert_eq!(l.last_auction(50), 2);
        assert_eq!(l.last_auction(51), 3);
    }

    #[test]
    fn ten_million_events_per_second_is_ten_thousand_per_millisecond() {
        let l = layout();
        assert_eq!(l.timestamp(9_999) - l.timestamp(0), 0);
        assert_eq!(l.timestamp(10_000) - l.timestamp(0), 1);
    }

    #[test]
    fn bids_reference_recent_auctions_and_bidders_carry_the_double_offset() {
        let l = layout();
        let mut f = FieldSource::new(7);
        for n in (1000..6000u64).filter(|n| l.kind(*n) == EventKind::Bid) {
            let last = l.last_auction(n);
            let b = f.bid(&l, n);
            assert!(b.auction >= FIRST_AUCTION_ID + (last - IN_FLIGHT_AUCTIONS).max(0) - 100);
            assert!(b.auction <= FIRST_AUCTION_ID + last + AUCTION_ID_LEAD);
            assert!(b.bidder >= 2 * FIRST_PERSON_ID);
            assert!((100..=100_000_000).contains(&b.price));
        }
    }
}
