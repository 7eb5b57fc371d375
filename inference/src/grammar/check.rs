//! Static checks that keep the matcher finite: every rule can finish (derives some finite
//! text) and no rule reaches itself without consuming a character (left recursion, `("")*`).

use super::gbnf::{Elem, Grammar};
use crate::error::{Error, Result};

/// Rules that can match the empty string (fixpoint).
pub fn nullable(g: &Grammar) -> Vec<bool> {
    let mut n = vec![false; g.rules.len()];
    let mut changed = true;
    while changed {
        changed = false;
        for (i, alts) in g.rules.iter().enumerate() {
            if !n[i]
                && alts.iter().any(|a| {
                    a.iter()
                        .all(|e| matches!(e, Elem::Rule(r) if n[*r as usize]))
                })
            {
                n[i] = true;
                changed = true;
            }
        }
    }
    n
}

/// Rules that derive at least one finite string (fixpoint): the others can never finish.
fn productive(g: &Grammar) -> Vec<bool> {
    let mut p = vec![false; g.rules.len()];
    let mut changed = true;
    while changed {
        changed = false;
        for (i, alts) in g.rules.iter().enumerate() {
            let ok = |e: &Elem| match e {
                Elem::Char(_) => true,
                Elem::Rule(r) => p[*r as usize],
            };
            if !p[i] && alts.iter().any(|a| a.iter().all(ok)) {
                p[i] = true;
                changed = true;
            }
        }
    }
    p
}

pub fn check(g: &Grammar) -> Result<()> {
    let prod = productive(g);
    if let Some(i) = (0..g.rules.len()).find(|&i| !prod[i]) {
        return Err(Error::Grammar(format!(
            "rule `{}` can never finish (every alternative recurses forever)",
            g.names[i]
        )));
    }
    let null = nullable(g);
    // first[i]: rules that rule i can expand to without consuming a character.
    let first: Vec<Vec<u32>> = g
        .rules
        .iter()
        .map(|alts| {
            let mut v = Vec::new();
            for a in alts {
                for e in a {
                    match e {
                        Elem::Char(_) => break,
                        Elem::Rule(r) => {
                            v.push(*r);
                            if !null[*r as usize] {
                                break;
                            }
                        }
                    }
                }
            }
            v.sort_unstable();
            v.dedup();
            v
        })
        .collect();
    // A cycle in the `first` graph is left recursion: iterative DFS with colours.
    let n = g.rules.len();
    let mut colour = vec![0u8; n];
    for start in 0..n {
        if colour[start] != 0 {
            continue;
        }
        let mut stack = vec![(start, 0usize)];
        colour[start] = 1;
        while let Some((v, k)) = stack.pop() {
            if let Some(&w) = first[v].get(k) {
                stack.push((v, k + 1));
                let w = w as usize;
                match colour[w] {
                    0 => {
                        colour[w] = 1;
                        stack.push((w, 0));
                    }
                    1 => {
                        return Err(Error::Grammar(format!(
                        "left recursion: rule `{}` can reach itself without consuming a character",
                        g.names[w]
                    )))
                    }
                    _ => {}
                }
            } else {
                colour[v] = 2;
            }
        }
    }
    Ok(())
}
