//! Task outputs: forwarding to one downstream subtask, or hashing each row's key to one of many
//! (a key shuffle). Control messages are broadcast to every downstream subtask.

use datafusion::arrow::array::{RecordBatch, UInt32Array};
use datafusion::arrow::compute::take_record_batch;
use datafusion::common::hash_utils::{RandomState, create_hashes};
use tokio::sync::mpsc;

use super::Message;
use crate::error::{EngineError, Result};

/// A sender tagged with the index of the sending subtask.
pub type Sender = mpsc::Sender<(usize, Message)>;

/// Where a task sends its output.
pub enum Output {
    /// The chain ends in a sink.
    None,
    /// To one downstream subtask.
    Forward {
        /// Channel.
        tx: Sender,
        /// This subtask's index among the receiver's inputs.
        me: usize,
    },
    /// To many downstream subtasks by key hash.
    Shuffle {
        /// One channel per downstream subtask.
        txs: Vec<Sender>,
        /// This subtask's index among each receiver's inputs.
        me: usize,
        /// Number of leading key columns to hash.
        key_count: usize,
    },
}

const HASH_STATE: RandomState = RandomState::with_seed(0x5EED);

impl Output {
    async fn send_to(tx: &Sender, me: usize, m: Message) -> Result<()> {
        tx.send((me, m)).await.map_err(|_| EngineError::Stopped)
    }

    /// Sends batches.
    pub async fn batches(&self, batches: Vec<RecordBatch>) -> Result<()> {
        for b in batches {
            if b.num_rows() == 0 {
                continue;
            }
            match self {
                Output::None => {}
                Output::Forward { tx, me } => Self::send_to(tx, *me, Message::Batch(b)).await?,
                Output::Shuffle { txs, me, key_count } => {
                    if txs.len() == 1 {
                        Self::send_to(&txs[0], *me, Message::Batch(b)).await?;
                        continue;
                    }
                    let mut hashes = vec![0u64; b.num_rows()];
                    create_hashes(&b.columns()[..*key_count], &HASH_STATE, &mut hashes)?;
                    let n = txs.len() as u64;
                    let mut parts: Vec<Vec<u32>> = vec![Vec::new(); txs.len()];
                    for (i, h) in hashes.iter().enumerate() {
                        parts[(h % n) as usize].push(i as u32);
                    }
                    for (p, idx) in parts.into_iter().enumerate() {
                        if idx.is_empty() {
                            continue;
                        }
                        let part = take_record_batch(&b, &UInt32Array::from(idx))?;
                        Self::send_to(&txs[p], *me, Message::Batch(part)).await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Broadcasts a control message.
    pub async fn control(&self, m: Message) -> Result<()> {
        match self {
            Output::None => Ok(()),
            Output::Forward { tx, me } => Self::send_to(tx, *me, m).await,
            Output::Shuffle { txs, me, .. } => {
                for tx in txs {
                    Self::send_to(tx, *me, m.clone()).await?;
                }
                Ok(())
            }
        }
    }
}
