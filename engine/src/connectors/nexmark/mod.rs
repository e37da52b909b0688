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

/// The rest of the pre-generated batch holding event `at`, with the number of its first event.
fn replayed(events: &[RecordBatch], at: u64) -> (RecordBatch, u64) {
    let mut start = 0u64;
    for b in events {
        let rows = b.num_rows() as u64;
        if at < start + rows {
            let skip = (at - start) as usize;
            return (b.slice(skip, b.num_rows() - skip), start);
        }
        start += rows;
    }
    let empty = match events.first() {
        Some(b) => RecordBatch::new_empty(b.schema()),
        None => RecordBatch::new_empty(Arc::new(datafusion::arrow::datatypes::Schema::empty())),
    };
    (empty, start)
}

/// Generates Nexmark events for one source.
pub struct NexmarkReader {
    schema: StreamSchema,
    slots: Vec<Slot>,
    layout: EventLayout,
    fields: FieldSource,
    seed: u64,
    next: u64,
    end: Option<u64>,
    subtask: u64,
    subtasks: u64,
    replay: Option<Arc<Vec<RecordBatch>>>,
}

/// Events per block: the unit of generation, of randomness (each block draws from its own seeded
/// generator, so its events do not depend on batch sizes or on which subtask makes it) and of
/// the split between parallel subtasks (block `b` belongs to subtask `b mod subtasks`).
pub const BLOCK_EVENTS: u64 = 4096;

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
            seed: opts.seed,
            next: 0,
            end: opts.events,
            subtask: 0,
            subtasks: 1,
            replay: None,
        }
    }

    /// This reader as subtask `subtask` of `subtasks`: it makes every `subtasks`-th block of
    /// events, starting with block `subtask`; together the subtasks make the whole stream.
    pub fn split(mut self, subtask: usize, subtasks: usize) -> Self {
        self.subtasks = subtasks.max(1) as u64;
        self.subtask = (subtask as u64).min(self.subtasks - 1);
        self.next = self.subtask * BLOCK_EVENTS;
        self
    }

    /// The subtask this reader is (its partition in positions and `ROWPARTITION`).
    pub fn subtask(&self) -> i32 {
        self.subtask as i32
    }

    /// The first event of this subtask's block after the one holding event `n`.
    fn next_block_after(&self, n: u64) -> u64 {
        (n / BLOCK_EVENTS + self.subtasks) * BLOCK_EVENTS
    }

    /// A reader that replays `events` (batches this connector generated earlier, in `schema`'s
    /// layout) instead of generating: benchmarks use it to time the dataflow without the
    /// generator.
    pub fn replaying(
        opts: &NexmarkOptions,
        schema: StreamSchema,
        events: Arc<Vec<RecordBatch>>,
    ) -> Result<Self> {
        if let Some(b) = events.first()
            && b.schema() != schema.arrow
        {
            return Err(crate::error::EngineError::Connector(
                "the pre-generated Nexmark events do not have this source's columns".into(),
            ));
        }
        let mut reader = NexmarkReader::new(opts, schema);
        reader.end = Some(events.iter().map(|b| b.num_rows() as u64).sum());
        reader.replay = Some(events);
        Ok(reader)
    }

    /// The next event this reader makes (its position, for checkpoints).
    pub fn position(&self) -> i64 {
        self.next as i64
    }

    /// Continues at event number `next` (a restored checkpoint).
    pub fn seek(&mut self, next: i64) {
        self.next = next.max(0) as u64;
    }

    /// Produces the rest of the current block. `max` is not applied: a block is generated whole
    /// so that its events never depend on batch sizes (blocks are [`BLOCK_EVENTS`] long).
    pub fn poll(&mut self, _max: usize) -> Result<Poll> {
        let end = self.end.unwrap_or(u64::MAX);
        if self.next >= end {
            return Ok(Poll::Exhausted);
        }
        if let Some(events) = &self.replay {
            let (batch, first) = replayed(events, self.next);
            self.next = self.next_block_after(first);
            return Ok(Poll::Batch(batch));
        }
        let block = self.next / BLOCK_EVENTS;
        let start = block * BLOCK_EVENTS;
        let stop = (start + BLOCK_EVENTS).min(end);
        self.fields.reseed(self.seed, block);
        let mut b = Builders::new((stop - start) as usize);
        for e in start..stop {
            b.push(&self.layout, &mut self.fields, e);
        }
        let batch = self.assemble(b, start)?;
        let skip = (self.next - start) as usize;
        self.next = self.next_block_after(start);
        Ok(Poll::Batch(batch.slice(skip, batch.num_rows() - skip)))
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
        cols.push(Arc::new(Int32Array::from(vec![self.subtask as i32; n])));
        cols.push(Arc::new(Int64Array::from_iter_values(
            (first..first + n as u64).map(|o| o as i64),
        )));
        cols.push(Arc::new(Int8Array::from(vec![0i8; n])));
        Ok(RecordBatch::try_new(self.schema.arrow.clone(), cols)?)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{AsArray, RecordBatch};
    use datafusion::arrow::compute::{concat_batches, sort_to_indices, take_record_batch};
    use datafusion::arrow::datatypes::Int64Type;
    use riffle_sql::catalog::Connector;
    use riffle_sql::planner::Planner;

    use super::{BLOCK_EVENTS, NexmarkReader};
    use crate::connectors::Poll;
    use crate::{Engine, EngineConfig};

    /// Everything the readers make, ordered by event number.
    fn drain(readers: Vec<NexmarkReader>) -> RecordBatch {
        let mut batches = Vec::new();
        for mut r in readers {
            while let Poll::Batch(b) = r.poll(100).expect("generates") {
                assert!(b.num_rows() as u64 <= BLOCK_EVENTS);
                batches.push(b);
            }
        }
        let all = concat_batches(&batches[0].schema(), &batches).expect("one layout");
        let offsets = all.column(all.num_columns() - 2);
        let order = sort_to_indices(offsets, None, None).expect("sorts");
        take_record_batch(&all, &order).expect("takes")
    }

    /// Split between subtasks, the generator makes exactly the events one reader makes, so a
    /// query's result does not depend on its parallelism.
    #[tokio::test]
    async fn subtasks_together_make_the_stream_of_one_reader() {
        let engine = Engine::new(EngineConfig::default()).expect("engine");
        engine
            .execute(
                "CREATE TABLE gen (event_type INT, person ROW<id BIGINT, name VARCHAR>, \
                 bid ROW<auction BIGINT, price BIGINT, extra VARCHAR>) \
                 WITH ('connector' = 'nexmark', 'events.num' = '10000', 'seed' = '3');",
            )
            .await
            .expect("declares");
        let def = engine.catalog().require("GEN").expect("declared");
        let Connector::Nexmark(opts) = &def.connector else {
            panic!("not a nexmark source");
        };
        let schema = Planner::source_schema(&def);
        let one = drain(vec![NexmarkReader::new(opts, schema.clone())]);
        let three = drain(
            (0..3)
                .map(|i| NexmarkReader::new(opts, schema.clone()).split(i, 3))
                .collect(),
        );
        assert_eq!(one.num_rows(), 10_000);
        let offsets = one
            .column(one.num_columns() - 2)
            .as_primitive::<Int64Type>();
        assert_eq!(offsets.value(9_999), 9_999);
        // The partition column names the subtask; everything else is the same.
        for c in (0..one.num_columns()).filter(|c| *c != one.num_columns() - 3) {
            assert_eq!(one.column(c), three.column(c), "column {c}");
        }
    }
}
