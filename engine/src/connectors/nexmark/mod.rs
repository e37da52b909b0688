//! Nexmark generator connector (`connector='nexmark'`): the benchmark's Person/Auction/Bid
//! stream built directly as Arrow batches in the layout Flink's nexmark DDL declares
//! (`event_type INT, person ROW<…>, auction ROW<…>, bid ROW<…>`, plus computed columns, filled
//! later by the source task). Options follow Flink's connector: `events.num`,
//! `first-event.rate`/`next-event.rate` (event time, not wall-clock pacing: events are emitted
//! as fast as they are consumed), the three proportions, plus `seed` and `base-time`.

pub mod model;

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, Int8Array, Int32Array, Int32Builder, Int64Array, Int64Builder, RecordBatch,
    StringBuilder, StructArray, TimestampMillisecondBuilder, new_null_array,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Fields};
use riffle_sql::catalog::NexmarkOptions;
use riffle_sql::plan::StreamSchema;

use self::model::{EventKind, EventLayout, FieldSource};
use crate::connectors::Poll;
use crate::error::Result;

/// What one declared column is filled with.
#[derive(Debug, Clone)]
enum Slot {
    EventType,
    Person(Fields),
    Auction(Fields),
    Bid(Fields),
    Null(DataType),
}

/// Column builders for one batch of events.
struct Builders {
    kinds: Int32Builder,
    valid: [Vec<bool>; 3],
    p_id: Int64Builder,
    p_name: StringBuilder,
    p_email: StringBuilder,
    p_card: StringBuilder,
    p_city: StringBuilder,
    p_state: StringBuilder,
    p_time: TimestampMillisecondBuilder,
    p_extra: StringBuilder,
    a_id: Int64Builder,
    a_item: StringBuilder,
    a_desc: StringBuilder,
    a_initial: Int64Builder,
    a_reserve: Int64Builder,
    a_time: TimestampMillisecondBuilder,
    a_expires: TimestampMillisecondBuilder,
    a_seller: Int64Builder,
    a_category: Int64Builder,
    a_extra: StringBuilder,
    b_auction: Int64Builder,
    b_bidder: Int64Builder,
    b_price: Int64Builder,
    b_channel: StringBuilder,
    b_url: StringBuilder,
    b_time: TimestampMillisecondBuilder,
    b_extra: StringBuilder,
    rowtime: Vec<i64>,
}

impl Builders {
    fn new(n: usize) -> Self {
        let people = n / 40 + 1;
        let auctions = n / 12 + 1;
        Builders {
            kinds: Int32Builder::with_capacity(n),
            valid: [
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            ],
            p_id: Int64Builder::with_capacity(n),
            p_name: StringBuilder::with_capacity(n, people * 12),
            p_email: StringBuilder::with_capacity(n, people * 16),
            p_card: StringBuilder::with_capacity(n, people * 20),
            p_city: StringBuilder::with_capacity(n, people * 10),
            p_state: StringBuilder::with_capacity(n, people * 2),
            p_time: TimestampMillisecondBuilder::with_capacity(n),
            p_extra: StringBuilder::with_capacity(n, people * 160),
            a_id: Int64Builder::with_capacity(n),
            a_item: StringBuilder::with_capacity(n, auctions * 12),
            a_desc: StringBuilder::with_capacity(n, auctions * 52),
            a_initial: Int64Builder::with_capacity(n),
            a_reserve: Int64Builder::with_capacity(n),
            a_time: TimestampMillisecondBuilder::with_capacity(n),
            a_expires: TimestampMillisecondBuilder::with_capacity(n),
            a_seller: Int64Builder::with_capacity(n),
            a_category: Int64Builder::with_capacity(n),
            a_extra: StringBuilder::with_capacity(n, auctions * 400),
            b_auction: Int64Builder::with_capacity(n),
            b_bidder: Int64Builder::with_capacity(n),
            b_price: Int64Builder::with_capacity(n),
            b_channel: StringBuilder::with_capacity(n, n * 10),
            b_url: StringBuilder::with_capacity(n, n * 60),
            b_time: TimestampMillisecondBuilder::with_capacity(n),
            b_extra: StringBuilder::with_capacity(n, n * 20),
            rowtime: Vec::with_capacity(n),
        }
    }

    fn null_person(&mut self) {
        self.p_id.append_null();
        self.p_name.append_null();
        self.p_email.append_null();
        self.p_card.append_null();
        self.p_city.append_null();
        self.p_state.append_null();
        self.p_time.append_null();
        self.p_extra.append_null();
    }

    fn null_auction(&mut self) {
        self.a_id.append_null();
        self.a_item.append_null();
        self.a_desc.append_null();
        self.a_initial.append_null();
        self.a_reserve.append_null();
        self.a_time.append_null();
        self.a_expires.append_null();
        self.a_seller.append_null();
        self.a_category.append_null();
        self.a_extra.append_null();
    }

    fn null_bid(&mut self) {
        self.b_auction.append_null();
        self.b_bidder.append_null();
        self.b_price.append_null();
        self.b_channel.append_null();
        self.b_url.append_null();
        self.b_time.append_null();
        self.b_extra.append_null();
    }

    fn push(&mut self, layout: &EventLayout, fields: &mut FieldSource, n: u64) {
        let kind = layout.kind(n);
        let ts = layout.timestamp(n);
        self.kinds.append_value(kind as i32);
        self.rowtime.push(ts);
        for (i, v) in self.valid.iter_mut().enumerate() {
            v.push(i == kind as usize);
        }
        match kind {
            EventKind::Person => {
                let p = fields.person(layout, n);
                self.p_id.append_value(p.id);
                self.p_name.append_value(&p.name);
                self.p_email.append_value(&p.email);
                self.p_card.append_value(&p.credit_card);
                self.p_city.append_value(p.city);
                self.p_state.append_value(p.state);
                self.p_time.append_value(ts);
                self.p_extra.append_value(p.extra);
                self.null_auction();
                self.null_bid();
            }
            EventKind::Auction => {
                let a = fields.auction(layout, n, ts);
                self.a_id.append_value(a.id);
                self.a_item.append_value(&a.item_name);
                self.a_desc.append_value(&a.description);
                self.a_initial.append_value(a.initial_bid);
                self.a_reserve.append_value(a.reserve);
                self.a_time.append_value(ts);
                self.a_expires.append_value(a.expires);
                self.a_seller.append_value(a.seller);
                self.a_category.append_value(a.category);
                self.a_extra.append_value(a.extra);
                self.null_person();
                self.null_bid();
            }
            EventKind::Bid => {
                let b = fields.bid(layout, n);
                self.b_auction.append_value(b.auction);
                self.b_bidder.append_value(b.bidder);
                self.b_price.append_value(b.price);
                self.b_channel.append_value(b.channel);
                self.b_url.append_value(b.url);
                self.b_time.append_value(ts);
                self.b_extra.append_value(b.extra);
                self.null_person();
                self.null_auction();
            }
        }
    }
}

/// Assembles a struct column in the declared field order, casting generated children to the
/// declared types; declared fields the generator does not know are NULL.
fn struct_column(
    declared: &Fields,
    generated: Vec<(&str, ArrayRef)>,
    valid: &[bool],
) -> Result<ArrayRef> {
    let n = valid.len();
    let mut children = Vec::with_capacity(declared.len());
    for f in declared.iter() {
        let upper = f.name().to_uppercase();
        let child = match generated.iter().find(|(name, _)| *name == upper) {
            Some((_, a)) if a.data_type() == f.data_type() => a.clone(),
            Some((_, a)) => cast(a, f.data_type())?,
            None => new_null_array(f.data_type(), n),
        };
        children.push(child);
    }
    let nulls = NullBuffer::from(valid.to_vec());
    Ok(Arc::new(StructArray::try_new(
        declared.clone(),
        children,
        Some(nulls),
    )?))
}

/// Generates Nexmark events for one source.
pub struct NexmarkReader {
    schema: StreamSchema,
    slots: Vec<Slot>,
    layout: EventLayout,
    fields: FieldSource,
    next: u64,
    end: Option<u64>,
}

impl NexmarkReader {
    /// A generator producing batches of `schema` (a relation's layout).
    pub fn new(opts: &NexmarkOptions, schema: StreamSchema) -> Self {
        let data_fields = schema.arrow.fields().len() - 4 - if schema.windowed { 2 } else { 0 };
        let slots = schema.arrow.fields()[..data_fields]
            .iter()
            .map(
                |f| match (f.name().to_uppercase().as_str(), f.data_type()) {
                    ("EVENT_TYPE", _) => Slot::EventType,
                    ("PERSON", DataType::Struct(fs)) => Slot::Person(fs.clone()),
                    ("AUCTION", DataType::Struct(fs)) => Slot::Auction(fs.clone()),
                    ("BID", DataType::Struct(fs)) => Slot::Bid(fs.clone()),
                    _ => Slot::Null(f.data_type().clone()),
                },
            )
            .collect();
        NexmarkReader {
            schema,
            slots,
            layout: EventLayout::new(opts),
            fields: FieldSource::new(opts.seed),
            next: 0,
            end: opts.events,
        }
    }

    /// Events generated so far.
    pub fn position(&self) -> i64 {
        self.next as i64
    }

    /// Continues at event number `next` (a restored checkpoint).
    pub fn seek(&mut self, next: i64) {
        self.next = next.max(0) as u64;
    }

    /// Produces up to `max` events.
    pub fn poll(&mut self, max: usize) -> Result<Poll> {
        let mut n = max.max(1) as u64;
        if let Some(end) = self.end {
            if self.next >= end {
                return Ok(Poll::Exhausted);
            }
            n = n.min(end - self.next);
        }
        let first = self.next;
        let mut b = Builders::new(n as usize);
        for e in first..first + n {
            b.push(&self.layout, &mut self.fields, e);
        }
        self.next += n;
        Ok(Poll::Batch(self.assemble(b, first)?))
    }

    fn assemble(&self, mut b: Builders, first: u64) -> Result<RecordBatch> {
        let n = b.rowtime.len();
        let kinds: ArrayRef = Arc::new(b.kinds.finish());
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(self.schema.arrow.fields().len());
        for slot in &self.slots {
            cols.push(match slot {
                Slot::EventType => match self.schema.arrow.field(cols.len()).data_type() {
                    DataType::Int32 => kinds.clone(),
                    other => cast(&kinds, other)?,
                },
                Slot::Person(fs) => struct_column(
                    fs,
                    vec![
                        ("ID", Arc::new(b.p_id.finish())),
                        ("NAME", Arc::new(b.p_name.finish())),
                        ("EMAILADDRESS", Arc::new(b.p_email.finish())),
                        ("CREDITCARD", Arc::new(b.p_card.finish())),
                        ("CITY", Arc::new(b.p_city.finish())),
                        ("STATE", Arc::new(b.p_state.finish())),
                        ("DATETIME", Arc::new(b.p_time.finish())),
                        ("EXTRA", Arc::new(b.p_extra.finish())),
                    ],
                    &b.valid[0],
                )?,
                Slot::Auction(fs) => struct_column(
                    fs,
                    vec![
                        ("ID", Arc::new(b.a_id.finish())),
                        ("ITEMNAME", Arc::new(b.a_item.finish())),
                        ("DESCRIPTION", Arc::new(b.a_desc.finish())),
                        ("INITIALBID", Arc::new(b.a_initial.finish())),
                        ("RESERVE", Arc::new(b.a_reserve.finish())),
                        ("DATETIME", Arc::new(b.a_time.finish())),
                        ("EXPIRES", Arc::new(b.a_expires.finish())),
                        ("SELLER", Arc::new(b.a_seller.finish())),
                        ("CATEGORY", Arc::new(b.a_category.finish())),
                        ("EXTRA", Arc::new(b.a_extra.finish())),
                    ],
                    &b.valid[1],
                )?,
                Slot::Bid(fs) => struct_column(
                    fs,
                    vec![
                        ("AUCTION", Arc::new(b.b_auction.finish())),
                        ("BIDDER", Arc::new(b.b_bidder.finish())),
                        ("PRICE", Arc::new(b.b_price.finish())),
                        ("CHANNEL", Arc::new(b.b_channel.finish())),
                        ("URL", Arc::new(b.b_url.finish())),
                        ("DATETIME", Arc::new(b.b_time.finish())),
                        ("EXTRA", Arc::new(b.b_extra.finish())),
                    ],
                    &b.valid[2],
                )?,
                Slot::Null(dt) => new_null_array(dt, n),
            });
        }
        if self.schema.windowed {
            cols.push(new_null_array(&DataType::Int64, n));
            cols.push(new_null_array(&DataType::Int64, n));
        }
        cols.push(Arc::new(Int64Array::from(std::mem::take(&mut b.rowtime))));
        cols.push(Arc::new(Int32Array::from(vec![0; n])));
        cols.push(Arc::new(Int64Array::from_iter_values(
            (first..first + n as u64).map(|o| o as i64),
        )));
        cols.push(Arc::new(Int8Array::from(vec![0i8; n])));
        Ok(RecordBatch::try_new(self.schema.arrow.clone(), cols)?)
    }
}
