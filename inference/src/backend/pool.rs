//! A persistent worker pool for the native CPU backend: `n - 1` threads that live as long as the
//! [`Pool`], spin briefly and then park between jobs, and are woken for each matrix product.
//!
//! No `unsafe`: a job owns everything it reads (the weight [`Bytes`] are reference counted and the
//! activations are copied in, which is small next to the product itself), and each worker writes
//! its rows into its own output buffer, which the caller copies out. Rows are split into
//! contiguous ranges; a row is always computed whole by one thread with the same kernel, so the
//! results do not depend on the thread count.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::model::{Bytes, QTensor};
use crate::quant::{self, Activations, GgmlType};

/// How long an idle worker (or the waiting caller) spins before it parks.
const SPIN: Duration = Duration::from_micros(300);

/// One matrix product: rows `ranges[i]` of `w` are worker `i`'s share (share 0 is the caller's).
struct Job {
    act: Activations,
    ty: GgmlType,
    w: Bytes,
    row_bytes: usize,
    cols: usize,
    x: Vec<f32>,
    n: usize,
    ranges: Vec<(usize, usize)>,
}

impl Job {
    fn run(&self, share: usize, out: &mut Vec<f32>) {
        let (r0, r1) = self.ranges[share];
        out.clear();
        out.resize(self.n * (r1 - r0), 0.0);
        let w = &self.w[r0 * self.row_bytes..r1 * self.row_bytes];
        quant::matmul_act(self.act, self.ty, w, self.cols, &self.x, self.n, out);
    }
}

struct State {
    job: Option<Arc<Job>>,
    quit: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    /// Bumped for every job (read without the lock while spinning).
    generation: AtomicU64,
    /// Workers that finished the current job.
    done: AtomicUsize,
    done_lock: Mutex<()>,
    done_cv: Condvar,
    /// Per worker (index 1..n): its rows of the last job, (n_tok, rows) row-major.
    outs: Vec<Mutex<Vec<f32>>>,
}

pub struct Pool {
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
    threads: usize,
}

impl Pool {
    /// A pool for `threads` threads in all: the caller plus `threads - 1` workers.
    pub fn new(threads: usize) -> Pool {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                job: None,
                quit: false,
            }),
            wake: Condvar::new(),
            generation: AtomicU64::new(0),
            done: AtomicUsize::new(0),
            done_lock: Mutex::new(()),
            done_cv: Condvar::new(),
            outs: (0..threads).map(|_| Mutex::new(Vec::new())).collect(),
        });
        let handles = (1..threads)
            .map(|i| {
                let sh = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("chord-worker-{i}"))
                    .spawn(move || worker(&sh, i))
                    .expect("spawn a worker thread")
            })
            .collect();
        Pool {
            shared,
            handles,
            threads,
        }
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// `out (n, w.rows) = x (n, w.cols) · wᵀ` with the rows split across the pool.
    pub fn matmul(&self, act: Activations, w: &QTensor, x: &[f32], n: usize, out: &mut [f32]) {
        let threads = self.threads.min(w.rows / 64).max(1);
        if threads == 1 {
            quant::matmul_act(act, w.ty, &w.data, w.cols, x, n, out);
            return;
        }
        let per = w.rows.div_ceil(threads);
        let ranges: Vec<(usize, usize)> = (0..threads)
            .map(|i| ((i * per).min(w.rows), ((i + 1) * per).min(w.rows)))
            .collect();
        let job = Arc::new(Job {
            act,
            ty: w.ty,
            w: w.data.clone(),
            row_bytes: w.row_bytes(),
            cols: w.cols,
            x: x.to_vec(),
            n,
            ranges,
        });
        let sh = &*self.shared;
        sh.done.store(0, Ordering::Release);
        {
            let mut st = sh.state.lock().expect("pool lock");
            st.job = Some(Arc::clone(&job));
            sh.generation.fetch_add(1, Ordering::AcqRel);
        }
        sh.wake.notify_all();

        // The caller's share goes straight into `out` when it is contiguous (one token).
        let scatter = |share: usize, rows: &[f32], out: &mut [f32]| {
            let (r0, r1) = job.ranges[share];
            let c = r1 - r0;
            for t in 0..n {
                out[t * w.rows + r0..t * w.rows + r1].copy_from_slice(&rows[t * c..(t + 1) * c]);
            }
        };
        {
            let mut mine = sh.outs[0].lock().expect("pool output lock");
            job.run(0, &mut mine);
            scatter(0, &mine, out);
        }

        // Wait for the workers: spin, then park.
        let want = self.threads - 1;
        let start = Instant::now();
        while sh.done.load(Ordering::Acquire) < want {
            if start.elapsed() < SPIN {
                std::hint::spin_loop();
            } else {
                let g = sh.done_lock.lock().expect("pool lock");
                if sh.done.load(Ordering::Acquire) < want {
                    let _g = sh
                        .done_cv
                        .wait_timeout(g, Duration::from_millis(1))
                        .expect("pool lock");
                }
            }
        }
        for share in 1..threads {
            let rows = sh.outs[share].lock().expect("pool output lock");
            scatter(share, &rows, out);
        }
        sh.state.lock().expect("pool lock").job = None;
    }
}

fn worker(sh: &Shared, me: usize) {
    let mut seen = 0u64;
    loop {
        // Spin for a new generation, then park on the condition variable.
        let start = Instant::now();
        while sh.generation.load(Ordering::Acquire) == seen && start.elapsed() < SPIN {
            std::hint::spin_loop();
        }
        let job = {
            let mut st = sh.state.lock().expect("pool lock");
            loop {
                if st.quit {
                    return;
                }
                let g = sh.generation.load(Ordering::Acquire);
                if g != seen {
                    seen = g;
                    break st.job.clone();
                }
                st = sh.wake.wait(st).expect("pool lock");
            }
        };
        let Some(job) = job else { continue };
        if me < job.ranges.len() {
            let mut out = sh.outs[me].lock().expect("pool output lock");
            job.run(me, &mut out);
        }
        drop(job);
        // Every worker reports, even one without a share, so `done` counts all of them.
        let _g = sh.done_lock.lock().expect("pool lock");
        sh.done.fetch_add(1, Ordering::AcqRel);
        sh.done_cv.notify_one();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.state.lock().expect("pool lock").quit = true;
        self.shared.wake.notify_all();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}
