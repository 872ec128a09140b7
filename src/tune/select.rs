//! Which candidate wins: samples taken in turn, the median decides, near-ties go to the earlier
//! candidate (the first is always the `Auto` plan), and a candidate that fails is out, never picked.

/// The median of a list (the mean of the middle two for an even count; NaN if empty).
#[must_use]
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => 0.5 * (s[n / 2 - 1] + s[n / 2]),
    }
}

/// Medians within this fraction of the fastest are a tie, which the earlier candidate wins: so the
/// `Auto` plan is kept unless another is clearly faster, and noise cannot flip the pick between two
/// equal candidates from run to run.
pub const TIE: f64 = 0.03;

/// What measuring a candidate gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Its samples, in milliseconds, in the order taken.
    Samples(Vec<f64>),
    /// Why it is out: it failed to compile or run, or its result was wrong.
    Out(String),
}

impl Outcome {
    /// The median of the samples, for a candidate still in.
    #[must_use]
    pub fn median_ms(&self) -> Option<f64> {
        match self {
            Outcome::Samples(s) if !s.is_empty() => Some(median(s)),
            _ => None,
        }
    }
}

/// Takes `rounds` samples of each of `n` candidates in turn (candidate 0, 1, …, n−1, then again), so
/// that a drift in the machine's speed hits all alike; `sample(i)` measures candidate `i` once. A
/// candidate whose sample fails, or is not a finite non-negative time, is out from then on.
///
/// Asynchronous, so that a page (which cannot block on its GPU) measures with the same loop as a
/// native program, which runs it with `pollster::block_on`; no executor is needed otherwise.
pub async fn measure<F, S>(n: usize, rounds: usize, mut sample: F) -> Vec<Outcome>
where
    F: FnMut(usize) -> S,
    S: Future<Output = Result<f64, String>>,
{
    let mut out = vec![Outcome::Samples(Vec::with_capacity(rounds)); n];
    for _ in 0..rounds {
        for (i, o) in out.iter_mut().enumerate() {
            if let Outcome::Samples(s) = o {
                match sample(i).await {
                    Ok(ms) if ms.is_finite() && ms >= 0.0 => s.push(ms),
                    Ok(ms) => *o = Outcome::Out(format!("measured {ms} ms")),
                    Err(e) => *o = Outcome::Out(e),
                }
            }
        }
    }
    out
}

/// The candidate to keep: the fastest median, or the first candidate within [`TIE`] of it; `None`
/// when every candidate is out.
#[must_use]
pub fn pick(outcomes: &[Outcome]) -> Option<usize> {
    let medians: Vec<Option<f64>> = outcomes.iter().map(Outcome::median_ms).collect();
    let best = medians.iter().flatten().copied().min_by(f64::total_cmp)?;
    medians.iter().position(|m| m.is_some_and(|m| m <= best * (1.0 + TIE)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::Rng;

    /// [`measure`] with a sampler that answers at once.
    fn measure_now(n: usize, rounds: usize, mut sample: impl FnMut(usize) -> Result<f64, String>) -> Vec<Outcome> {
        pollster::block_on(measure(n, rounds, |i| std::future::ready(sample(i))))
    }

    /// A fake timer: candidate `i` takes `true_ms[i]` with ±`noise` relative jitter, a first sample
    /// `first` times slower (a cold cache), an outlier 20× slower every 7th sample, and candidates in
    /// `failing` erroring on their third sample.
    fn timer<'a>(
        true_ms: &'a [f64],
        noise: f64,
        failing: &'a [usize],
    ) -> impl FnMut(usize) -> Result<f64, String> + 'a {
        let mut rng = Rng::new(42);
        let mut count = vec![0usize; true_ms.len()];
        move |i| {
            count[i] += 1;
            if failing.contains(&i) && count[i] == 3 {
                return Err("pipeline creation failed".into());
            }
            let jitter = 1.0 + noise * (2.0 * f64::from(rng.uniform()) - 1.0);
            let cold = if count[i] == 1 { 5.0 } else { 1.0 };
            let outlier = if count[i].is_multiple_of(7) { 20.0 } else { 1.0 };
            Ok(true_ms[i] * jitter * cold * outlier)
        }
    }

    #[test]
    fn a_planted_winner_is_found_through_noise_a_slow_first_sample_and_outliers() {
        let true_ms = [10.0, 12.0, 7.0, 9.5, 30.0];
        let out = measure_now(true_ms.len(), 15, timer(&true_ms, 0.05, &[]));
        assert_eq!(pick(&out), Some(2));
    }

    #[test]
    fn a_failing_candidate_is_out_even_when_it_would_be_fastest() {
        let true_ms = [10.0, 1.0, 7.0];
        let out = measure_now(3, 9, timer(&true_ms, 0.02, &[1]));
        assert!(matches!(out[1], Outcome::Out(_)));
        assert_eq!(pick(&out), Some(2));
    }

    #[test]
    fn all_candidates_out_picks_none() {
        let out = measure_now(2, 5, |_| Err("no".to_string()));
        assert_eq!(pick(&out), None);
        let out = measure_now(2, 5, |_| Ok(f64::NAN));
        assert_eq!(pick(&out), None);
    }

    #[test]
    fn ties_go_to_the_earlier_candidate_and_are_stable() {
        // Equal candidates: whatever the noise, the first (Auto) keeps it, run after run.
        for seed_shift in 0..20 {
            let true_ms = [10.0, 10.0, 10.0 + 0.01 * f64::from(seed_shift)];
            let out = measure_now(3, 11, timer(&true_ms, 0.01, &[]));
            assert_eq!(pick(&out), Some(0));
        }
        // A candidate 2% faster is a tie; 10% faster is not.
        let fixed = |ms: [f64; 2]| measure_now(2, 5, move |i| Ok(ms[i]));
        assert_eq!(pick(&fixed([10.0, 9.8])), Some(0));
        assert_eq!(pick(&fixed([10.0, 9.0])), Some(1));
    }

    #[test]
    fn samples_are_taken_in_turn() {
        let mut order = Vec::new();
        let _ = measure_now(3, 2, |i| {
            order.push(i);
            Ok(1.0)
        });
        assert_eq!(order, [0, 1, 2, 0, 1, 2]);
    }
}
