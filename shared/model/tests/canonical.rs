//! The canonical form is sound: a state and its representative (normalized, with every time
//! shifted) have the same canonical form, satisfy the same properties, and stay alike under
//! every input of the alphabet. Checked on random runs, so that a change in the core that
//! breaks one of `normalize`'s assumptions fails here rather than hiding states.

use burst_core::state::SiteState;
use burst_model::model::{BurstModel, State, map_timestamps, normalize};
use burst_model::test_policy;
use stateright::Model;

const WALKS: usize = 60;
const STEPS: usize = 40;

/// xorshift64*: deterministic, so a failure is reproducible.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}

/// `s` normalized, every time moved by `shift_ms`, and another id counter.
fn representative(s: &State, shift_ms: i64) -> State {
    let doc = normalize(&s.site, s.now, &s.policy).to_json();
    let shifted = map_timestamps(&doc, |t| (t + shift_ms).to_string());
    let mut r = s.clone();
    r.site = SiteState::from_json(&shifted).expect("the shifted document parses");
    r.now = s.now.plus_millis(shift_ms);
    r.next_id += 1000;
    r
}

fn show(s: &State) -> String {
    String::from_utf8_lossy(&s.canonical()).into_owned()
}

#[test]
fn states_with_one_canonical_form_behave_alike() {
    let model = BurstModel::new(test_policy(), true, usize::MAX);
    let properties = model.properties();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut pairs = 0;
    for _ in 0..WALKS {
        let mut s = model.init_states().remove(0);
        for _ in 0..STEPS {
            let shift = [0, 30_000, 3_600_000, 2 * 86_400_000][rng.below(4)];
            let r = representative(&s, shift);
            assert!(s == r, "not canonical-equal:\n{}\n{}", show(&s), show(&r));
            for p in &properties {
                let (a, b) = ((p.condition)(&model, &s), (p.condition)(&model, &r));
                assert_eq!(a, b, "{}: {}", p.name, show(&s));
            }
            let mut actions = Vec::new();
            model.actions(&s, &mut actions);
            let mut theirs = Vec::new();
            model.actions(&r, &mut theirs);
            assert_eq!(actions, theirs);
            for a in &actions {
                let n1 = model.next_state(&s, *a).expect("an offered action applies");
                let n2 = model.next_state(&r, *a).expect("an offered action applies");
                assert!(
                    n1 == n2,
                    "after {a:?} the canonical forms differ:\n{}\n{}",
                    show(&n1),
                    show(&n2)
                );
                pairs += 1;
            }
            s = model
                .next_state(&s, actions[rng.below(actions.len())])
                .expect("an offered action applies");
        }
    }
    println!("{pairs} state pairs stepped alike");
}
