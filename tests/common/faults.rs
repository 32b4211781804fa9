//! Fault injection shared by the fakes that take writes (gradebook, UWLR
//! results, OKE): which write gets which fault, reproducibly.

/// A fault a fake can inject; each fake names the ones it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Status500,
    Status503,
    TooMany,
    /// HTTP 500 with a SOAP `Server` fault, nothing stored (UWLR).
    SoapServer,
    /// 200 with an HTML page (a proxy's login page), nothing stored.
    HtmlOk,
    /// Store the write, then answer after the client gave up.
    SlowAfterStore,
    /// Store the write, then cut the connection mid-response.
    DropAfterStore,
}

/// What a flaky HTTP service does to writes, in turn: refuses one (500),
/// throttles one (429), stores one and answers after the client gave up,
/// is unavailable for one (503). The exactly-once tests of the result
/// sinks run against it.
pub const FLAKY_HTTP: [Fault; 4] = [
    Fault::Status500,
    Fault::TooMany,
    Fault::SlowAfterStore,
    Fault::Status503,
];

/// `percent` of the writes get one of `kinds`, in turn; which writes is
/// decided by a fixed xorshift sequence, so a run repeats exactly.
#[derive(Debug, Clone)]
pub struct Faults<F> {
    /// Percentage of writes that get a fault (0 to 100).
    pub percent: u32,
    /// Faults to pick from, round-robin.
    pub kinds: Vec<F>,
    /// How many faults were injected so far.
    pub injected: usize,
    counter: u64,
    rng: u64,
}

impl<F> Default for Faults<F> {
    fn default() -> Self {
        Faults {
            percent: 0,
            kinds: Vec::new(),
            injected: 0,
            counter: 0,
            rng: 0x2545_f491_4f6c_dd1d,
        }
    }
}

impl<F: Copy> Faults<F> {
    /// The fault for the next write, if it gets one.
    pub fn next(&mut self) -> Option<F> {
        if self.kinds.is_empty() {
            return None;
        }
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        if self.rng % 100 >= u64::from(self.percent) {
            return None;
        }
        let f = self.kinds[(self.counter % self.kinds.len() as u64) as usize];
        self.counter += 1;
        self.injected += 1;
        Some(f)
    }
}
