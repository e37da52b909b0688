//! Row patterns compiled to a nondeterministic automaton: a small instruction program in the
//! style of a Pike VM. `Split` lists its preferred branch first, so running threads in order
//! yields SQL:2016's preferment — greedy quantifiers prefer more rows, reluctant ones fewer,
//! alternation prefers its leftmost branch.

use crate::ast::Pattern;
use crate::error::{Result, SqlError};

/// Most copies a bounded quantifier may expand into.
const MAX_EXPANSION: u32 = 1000;

/// One instruction of a pattern program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inst {
    /// Consume one row classified as pattern variable `n` (if its DEFINE holds).
    Var(usize),
    /// Continue at both targets, preferring the first.
    Split(usize, usize),
    /// Continue at the target.
    Jmp(usize),
    /// The pattern matched.
    Match,
}

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    /// Instructions; execution starts at 0.
    pub insts: Vec<Inst>,
    /// Pattern variable names, indexed by the numbers in [`Inst::Var`].
    pub vars: Vec<String>,
}

impl Program {
    /// Compiles a pattern.
    pub fn compile(pattern: &Pattern) -> Result<Program> {
        let mut p = Program {
            insts: Vec::new(),
            vars: Vec::new(),
        };
        p.emit(pattern)?;
        p.insts.push(Inst::Match);
        Ok(p)
    }

    /// The number of a pattern variable.
    pub fn var(&self, name: &str) -> Option<usize> {
        self.vars.iter().position(|v| v == name)
    }

    fn push(&mut self, i: Inst) -> usize {
        self.insts.push(i);
        self.insts.len() - 1
    }

    fn patch(&mut self, at: usize, target: usize, first: bool) {
        if let Inst::Split(a, b) = &mut self.insts[at] {
            if first {
                *a = target;
            } else {
                *b = target;
            }
        } else if let Inst::Jmp(t) = &mut self.insts[at] {
            *t = target;
        }
    }

    fn emit(&mut self, p: &Pattern) -> Result<()> {
        match p {
            Pattern::Var(name) => {
                let n = match self.var(name) {
                    Some(n) => n,
                    None => {
                        self.vars.push(name.clone());
                        self.vars.len() - 1
                    }
                };
                self.push(Inst::Var(n));
            }
            Pattern::Concat(items) => {
                for i in items {
                    self.emit(i)?;
                }
            }
            Pattern::Alt(alts) => {
                let mut ends = Vec::new();
                for (i, a) in alts.iter().enumerate() {
                    if i + 1 < alts.len() {
                        let split = self.push(Inst::Split(0, 0));
                        self.patch(split, split + 1, true);
                        self.emit(a)?;
                        ends.push(self.push(Inst::Jmp(0)));
                        let next = self.insts.len();
                        self.patch(split, next, false);
                    } else {
                        self.emit(a)?;
                    }
                }
                let end = self.insts.len();
                for j in ends {
                    self.patch(j, end, true);
                }
            }
            Pattern::Repeat {
                inner,
                min,
                max,
                greedy,
            } => {
                if *min > MAX_EXPANSION || max.is_some_and(|m| m > MAX_EXPANSION) {
                    return Err(SqlError::semantic(format!(
                        "pattern quantifier bounds may be at most {MAX_EXPANSION}"
                    )));
                }
                for _ in 0..*min {
                    self.emit(inner)?;
                }
                match max {
                    None => {
                        // loop: Split(body, exit); body; Jmp loop
                        let split = self.push(Inst::Split(0, 0));
                        self.emit(inner)?;
                        self.push(Inst::Jmp(split));
                        let exit = self.insts.len();
                        self.set_split(split, split + 1, exit, *greedy);
                    }
                    Some(max) => {
                        let mut splits = Vec::new();
                        for _ in *min..*max {
                            let split = self.push(Inst::Split(0, 0));
                            splits.push(split);
                            self.emit(inner)?;
                        }
                        let exit = self.insts.len();
                        for s in splits {
                            self.set_split(s, s + 1, exit, *greedy);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn set_split(&mut self, at: usize, body: usize, exit: usize, greedy: bool) {
        self.insts[at] = if greedy {
            Inst::Split(body, exit)
        } else {
            Inst::Split(exit, body)
        };
    }

    /// The instructions reachable from `pc` without consuming a row, in preference order:
    /// `Var` and `Match` instructions only. Cycles of empty iterations are cut.
    pub fn closure(&self, pc: usize, out: &mut Vec<usize>) {
        let mut visited = vec![false; self.insts.len()];
        self.walk(pc, &mut visited, out);
    }

    fn walk(&self, pc: usize, visited: &mut [bool], out: &mut Vec<usize>) {
        if visited[pc] {
            return;
        }
        visited[pc] = true;
        match self.insts[pc] {
            Inst::Var(_) | Inst::Match => out.push(pc),
            Inst::Jmp(t) => self.walk(t, visited, out),
            Inst::Split(a, b) => {
                self.walk(a, visited, out);
                self.walk(b, visited, out);
            }
        }
    }

    /// Human-readable form for EXPLAIN.
    pub fn render(&self) -> String {
        self.insts
            .iter()
            .enumerate()
            .map(|(i, inst)| match inst {
                Inst::Var(v) => format!("{i}:{}", self.vars[*v]),
                Inst::Split(a, b) => format!("{i}:split({a},{b})"),
                Inst::Jmp(t) => format!("{i}:jmp({t})"),
                Inst::Match => format!("{i}:match"),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(n: &str) -> Pattern {
        Pattern::Var(n.into())
    }

    /// Every way the program can consume `input` (a sequence of variable names) and reach
    /// `Match`, in preference order — a reference interpreter for the tests.
    fn runs(p: &Program, input: &[&str]) -> bool {
        let mut threads = Vec::new();
        p.closure(0, &mut threads);
        for v in input {
            let mut next = Vec::new();
            for pc in threads {
                if let Inst::Var(n) = p.insts[pc]
                    && p.vars[n] == *v
                {
                    p.closure(pc + 1, &mut next);
                }
            }
            threads = next;
        }
        threads.iter().any(|pc| p.insts[*pc] == Inst::Match)
    }

    #[test]
    fn quantifiers_accept_their_counts() {
        let p = Program::compile(&Pattern::Concat(vec![
            var("A"),
            Pattern::Repeat {
                inner: Box::new(var("B")),
                min: 2,
                max: Some(3),
                greedy: true,
            },
        ]))
        .unwrap();
        assert!(!runs(&p, &["A", "B"]));
        assert!(runs(&p, &["A", "B", "B"]));
        assert!(runs(&p, &["A", "B", "B", "B"]));
        assert!(!runs(&p, &["A", "B", "B", "B", "B"]));
    }

    #[test]
    fn greedy_prefers_the_loop_and_reluctant_the_exit() {
        let star = |greedy| {
            Program::compile(&Pattern::Repeat {
                inner: Box::new(var("A")),
                min: 0,
                max: None,
                greedy,
            })
            .unwrap()
        };
        let mut out = Vec::new();
        star(true).closure(0, &mut out);
        assert_eq!(star(true).insts[out[0]], Inst::Var(0));
        out.clear();
        star(false).closure(0, &mut out);
        assert_eq!(star(false).insts[out[0]], Inst::Match);
    }

    #[test]
    fn alternation_and_groups() {
        let p = Program::compile(&Pattern::Concat(vec![
            Pattern::Repeat {
                inner: Box::new(Pattern::Alt(vec![
                    var("A"),
                    Pattern::Concat(vec![var("B"), var("C")]),
                ])),
                min: 1,
                max: None,
                greedy: true,
            },
            var("D"),
        ]))
        .unwrap();
        assert!(runs(&p, &["A", "B", "C", "A", "D"]));
        assert!(!runs(&p, &["A", "B", "D"]));
        assert_eq!(p.vars, vec!["A", "B", "C", "D"]);
    }

    #[test]
    fn nested_empty_loops_terminate() {
        let p = Program::compile(&Pattern::Repeat {
            inner: Box::new(Pattern::Repeat {
                inner: Box::new(var("A")),
                min: 0,
                max: None,
                greedy: true,
            }),
            min: 0,
            max: None,
            greedy: true,
        })
        .unwrap();
        assert!(runs(&p, &["A", "A"]));
    }
}
