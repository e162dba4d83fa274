//! What a channel type's blocklist costs a message: the matcher checking a 40-word and a
//! 400-word text against lists of 100 and 10,000 entries, next to lowercasing and splitting the
//! same text into words (a floor any check pays) in the same run. Prints figures; asserts
//! nothing. Run: `cargo bench -p shared --bench blocklist`.

use shared::domain::blocklist::Matcher;
use std::hint::black_box;
use std::time::Instant;

const ROUNDS: usize = 20_000;

fn per_call(f: &dyn Fn()) -> f64 {
    for _ in 0..1000 {
        f();
    }
    let started = Instant::now();
    for _ in 0..ROUNDS {
        f();
    }
    started.elapsed().as_secs_f64() * 1e6 / ROUNDS as f64
}

fn main() {
    let sentence = "Hey, are we still meeting at the cafe tomorrow? I think Sarah's bringing the \
                    slides and we'll go over the numbers before lunch, then head out. ";
    let short: String = sentence.to_string();
    let long: String = sentence.repeat(10);
    println!("blocklist check per message (µs), {ROUNDS} rounds each");
    println!("{:<36}{:>14}{:>14}", "", "40 words", "400 words");
    let floor = |text: &str| {
        let text = text.to_string();
        move || {
            black_box(
                text.split(|c: char| !c.is_alphanumeric())
                    .filter(|w| !w.is_empty())
                    .map(str::to_lowercase)
                    .count(),
            );
        }
    };
    println!(
        "{:<36}{:>14.2}{:>14.2}",
        "split + lowercase (baseline)",
        per_call(&floor(&short)),
        per_call(&floor(&long))
    );
    for size in [100usize, 10_000] {
        // Entries that never match (the common case: the whole text is looked up), with a
        // tenth of them two-word phrases.
        let words: Vec<String> = (0..size)
            .map(|i| {
                if i % 10 == 0 {
                    format!("zq{i} phrase{i}")
                } else {
                    format!("zq{i}")
                }
            })
            .collect();
        let matcher = Matcher::new(&words);
        let check = |text: &str| {
            let text = text.to_string();
            let matcher = &matcher;
            move || {
                black_box(matcher.first_match(black_box(&text)));
            }
        };
        println!(
            "{:<36}{:>14.2}{:>14.2}",
            format!("matcher, {size} entries"),
            per_call(&check(&short)),
            per_call(&check(&long))
        );
    }
}
