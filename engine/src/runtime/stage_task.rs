//! Stage task: receives from one or more upstream subtasks, runs its operator chain and sends
//! downstream. The stage watermark is the minimum over live inputs; a barrier is processed once
//! every live input delivered it (messages behind a barrier wait), so snapshots are consistent.

use std::collections::VecDeque;

use std::sync::Arc;

use tokio::sync::mpsc;

use super::coordinator::Coordinator;
use super::exchange::Output;
use super::{Barrier, Message};
use crate::error::Result;
use crate::operators::{Chain, OpContext};

/// Everything a stage task owns.
pub struct StageTask {
    /// Inbound messages tagged with the sending upstream subtask.
    pub input: mpsc::Receiver<(usize, Message)>,
    /// Number of upstream subtasks.
    pub upstreams: usize,
    /// The input side (0 = left, 1 = right) of each upstream subtask.
    pub sides: Vec<usize>,
    /// Operators.
    pub chain: Chain,
    /// Where results go.
    pub output: Output,
    /// Operator context.
    pub ctx: OpContext,
    /// With a transactional sink in this stage: the coordinator to wait on after a checkpoint
    /// barrier until the checkpoint committed.
    pub commit_gate: Option<Arc<Coordinator>>,
}

struct Inputs {
    watermarks: Vec<i64>,
    ended: Vec<bool>,
    caught_up: Vec<bool>,
    sides_ready: Vec<bool>,
    forwarded_caught_up: bool,
    barrier: Vec<Option<Barrier>>,
    buffered: Vec<VecDeque<Message>>,
    current: i64,
}

impl StageTask {
    /// Runs until every upstream ended.
    pub async fn run(mut self) -> Result<()> {
        let n = self.upstreams.max(1);
        let mut st = Inputs {
            watermarks: vec![i64::MIN; n],
            ended: vec![false; n],
            caught_up: vec![false; n],
            sides_ready: vec![false; 2],
            forwarded_caught_up: false,
            barrier: vec![None; n],
            buffered: vec![VecDeque::new(); n],
            current: i64::MIN,
        };
        let mut pending: VecDeque<(usize, Message)> = VecDeque::new();
        loop {
            let (from, msg) = match pending.pop_front() {
                Some(m) => m,
                None => match self.input.recv().await {
                    Some(m) => m,
                    None => {
                        // Every sender is gone without End: treat as the end of input.
                        let out = self.chain.end(&mut self.ctx)?;
                        self.output.batches(out).await?;
                        return self.output.control(Message::End).await;
                    }
                },
            };
            if st.barrier[from].is_some() {
                st.buffered[from].push_back(msg);
                continue;
            }
            match msg {
                Message::Batch(b) => {
                    let side = self.sides.get(from).copied().unwrap_or(0);
                    let out = self.chain.process_side(side, b, &mut self.ctx)?;
                    self.output.batches(out).await?;
                }
                Message::Watermark(w) => {
                    st.watermarks[from] = st.watermarks[from].max(w);
                    self.maybe_advance(&mut st).await?;
                }
                Message::Barrier(e) => {
                    st.barrier[from] = Some(e);
                    self.maybe_complete_barrier(&mut st, &mut pending).await?;
                }
                Message::CaughtUp => {
                    st.caught_up[from] = true;
                    self.maybe_caught_up(&mut st).await?;
                }
                Message::End => {
                    st.ended[from] = true;
                    st.caught_up[from] = true;
                    if !st.ended.iter().all(|e| *e) {
                        self.maybe_caught_up(&mut st).await?;
                    }
                    if st.ended.iter().all(|e| *e) {
                        let out = self.chain.end(&mut self.ctx)?;
                        self.output.batches(out).await?;
                        return self.output.control(Message::End).await;
                    }
                    self.maybe_advance(&mut st).await?;
                    self.maybe_complete_barrier(&mut st, &mut pending).await?;
                }
            }
        }
    }

    /// Tells operators when every upstream of a side has caught up, and passes the signal on once
    /// all inputs have.
    async fn maybe_caught_up(&mut self, st: &mut Inputs) -> Result<()> {
        for side in 0..st.sides_ready.len() {
            if st.sides_ready[side] {
                continue;
            }
            let mut of_side = (0..st.caught_up.len())
                .filter(|i| self.sides.get(*i).copied().unwrap_or(0) == side)
                .peekable();
            if of_side.peek().is_none() {
                continue;
            }
            if of_side.all(|i| st.caught_up[i]) {
                st.sides_ready[side] = true;
                let out = self.chain.side_caught_up(side, &mut self.ctx)?;
                self.output.batches(out).await?;
            }
        }
        if !st.forwarded_caught_up && st.caught_up.iter().all(|c| *c) {
            st.forwarded_caught_up = true;
            self.output.control(Message::CaughtUp).await?;
        }
        Ok(())
    }

    async fn maybe_advance(&mut self, st: &mut Inputs) -> Result<()> {
        let live = st
            .watermarks
            .iter()
            .zip(&st.ended)
            .filter(|(_, e)| !**e)
            .map(|(w, _)| *w);
        let Some(wm) = live.min() else { return Ok(()) };
        if wm > st.current {
            st.current = wm;
            self.ctx.metrics.set_watermark(wm);
            let out = self.chain.watermark(wm, &mut self.ctx)?;
            self.output.batches(out).await?;
            self.output.control(Message::Watermark(wm)).await?;
        }
        Ok(())
    }

    async fn maybe_complete_barrier(
        &mut self,
        st: &mut Inputs,
        pending: &mut VecDeque<(usize, Message)>,
    ) -> Result<()> {
        let waiting: Vec<Barrier> = st.barrier.iter().flatten().copied().collect();
        let Some(&barrier) = waiting.first() else {
            return Ok(());
        };
        let aligned = st
            .barrier
            .iter()
            .zip(&st.ended)
            .all(|(b, e)| *e || b.is_some());
        if !aligned {
            return Ok(());
        }
        self.chain.barrier(barrier, &mut self.ctx)?;
        self.output.control(Message::Barrier(barrier)).await?;
        if let (Some(c), Some(epoch)) = (&self.commit_gate, barrier.checkpoint) {
            c.wait_committed(epoch)
                .await
                .map_err(|_| crate::error::EngineError::Stopped)?;
        }
        let mut replay = VecDeque::new();
        for (i, q) in st.buffered.iter_mut().enumerate() {
            st.barrier[i] = None;
            while let Some(m) = q.pop_front() {
                replay.push_back((i, m));
            }
        }
        while let Some(m) = pending.pop_front() {
            replay.push_back(m);
        }
        *pending = replay;
        Ok(())
    }
}
