//! The provider-outage scenario: card payments routed to Stripe, then PayPal (a route of two,
//! from `ROUTING_FILE`), both fakes in this process that count every charge by idempotency
//! key. Under load, Stripe goes down mid-run: it refuses connections for SECONDS (the charges
//! must fail over to PayPal), then for 10 s it charges and answers 500 (the outcome is unknown:
//! those charges must stay at Stripe until a retry or the recovery task settles them), then it
//! is healthy again. The API is SIGKILLed KILLS times at random moments of the outage, and once
//! more as Stripe switches from refusing to failing. Afterwards the store is
//! verified as in the crash test, and the fakes' books against the store's: nothing charged
//! twice, nothing charged that the store does not record at that provider, nothing recorded
//! that no provider charged.

use std::time::{Duration, Instant};

use anyhow::bail;
use rand::Rng;

use super::load::{Load, Mix};
use super::providers::{Books, Fake, audit};
use super::rig::Rig;
use super::{conclude, finals, verify};

/// Charges at one fake that took money so far.
fn charged(fake: &Fake) -> usize {
    fake.books().charged()
}

/// What is scheduled during the outage, by its offset from the outage's start.
enum Step {
    Kill,
    FailAfterActing,
}

pub async fn provider_outage(args: &[String]) -> anyhow::Result<()> {
    let seconds: u64 = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(20);
    let kills: u32 = args.get(2).map(|k| k.parse()).transpose()?.unwrap_or(4);
    const FAILING: u64 = 10;
    let mut stripe = Fake::start("stripe").await?;
    let paypal = Fake::start("paypal").await?;
    let routes =
        std::env::temp_dir().join(format!("portside-chaos-routes-{}.toml", std::process::id()));
    std::fs::write(
        &routes,
        "[[rules]]\nname = \"cards\"\nproviders = [{ name = \"stripe\" }, { name = \"paypal\" }]\n",
    )?;
    let settings: Vec<(&str, String)> = vec![
        ("PAYMENT_PROVIDER", "stripe".into()),
        ("STRIPE_SECRET_KEY", "sk_test_chaos".into()),
        ("STRIPE_API_BASE", stripe.url()),
        ("PAYPAL_CLIENT_ID", "chaos".into()),
        ("PAYPAL_CLIENT_SECRET", "chaos-paypal-secret".into()),
        ("PAYPAL_API_BASE", paypal.url()),
        ("ROUTING_FILE", routes.display().to_string()),
        ("PROVIDER_TIMEOUT", "2s".into()),
        ("RECOVERY_INTERVAL", "2s".into()),
        ("RECOVERY_GRACE", "5s".into()),
    ];
    let mut rig = Rig::start("postgres", None, &settings).await?;
    let token = rig.sign_in().await?;
    rig.shelve().await?;
    let recipient = rig.recipient().await?;
    let load = Load::start(
        &rig.http,
        &rig.server.base,
        &token,
        &recipient,
        Duration::ZERO,
        Mix { asynchronous: true },
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    let mut at_stripe = vec![charged(&stripe)];
    let mut at_paypal = vec![charged(&paypal)];

    // The outage: kills at random moments, the switch to failing after SECONDS.
    let outage = Duration::from_secs(seconds + FAILING);
    let mut steps: Vec<(Duration, Step)> = (0..kills)
        .map(|_| {
            let at = rand::rng().random_range(500..outage.as_millis() as u64);
            (Duration::from_millis(at), Step::Kill)
        })
        .collect();
    steps.push((Duration::from_secs(seconds), Step::FailAfterActing));
    steps.sort_by_key(|(at, _)| *at);
    stripe.down().await;
    let down = Instant::now();
    eprintln!("stripe refuses connections for {seconds} s");
    let mut recoveries = Vec::new();
    for (at, step) in steps {
        tokio::time::sleep(at.saturating_sub(down.elapsed())).await;
        match step {
            Step::Kill => {
                rig.server.kill9().await;
                rig.server.spawn()?;
                recoveries.push(rig.server.ready(&rig.http).await?);
                eprintln!("API killed and restarted at {:.1} s", at.as_secs_f64());
            }
            Step::FailAfterActing => {
                at_stripe.push(charged(&stripe));
                at_paypal.push(charged(&paypal));
                stripe.up().await?;
                stripe.fail_after_acting();
                // A restart, so that the 500s meet a closed circuit: the one the refusals
                // opened would keep every call away from Stripe for its 30 s.
                rig.server.kill9().await;
                rig.server.spawn()?;
                recoveries.push(rig.server.ready(&rig.http).await?);
                eprintln!(
                    "stripe charges and answers 500 for {FAILING} s; API killed and restarted"
                );
            }
        }
    }
    tokio::time::sleep(outage.saturating_sub(down.elapsed())).await;
    at_stripe.push(charged(&stripe));
    at_paypal.push(charged(&paypal));
    stripe.up().await?;
    let up = Instant::now();
    eprintln!("stripe healthy again");
    // Until Stripe takes new charges again (its circuit closes), then 10 s more.
    let mut back = None;
    while up.elapsed() < Duration::from_secs(90) {
        if charged(&stripe) > at_stripe[2] + 3 {
            back = Some(up.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let done = load.stop().await?;
    let settled = rig.settled().await?;
    let drain = rig.drain().await?;
    rig.server.terminate().await?;
    at_stripe.push(charged(&stripe));
    at_paypal.push(charged(&paypal));
    let _ = std::fs::remove_file(&routes);

    let mut report = verify::verify(&rig.store, &done.ledger).await?;
    let books: Vec<(&str, Books)> = vec![("stripe", stripe.books()), ("paypal", paypal.books())];
    let audited = audit(&rig.store, &books).await?;
    report.duplicated += audited.charged_twice;
    report.lost += audited.disagreements;
    report.details.extend(audited.details);
    let moved = |outcome: &str| {
        format!(
            "SELECT CAST(count(*) AS TEXT) FROM payments WHERE CAST(routing AS TEXT) LIKE '%\"outcome\": \"{outcome}\"%'"
        )
    };
    let unavailable = rig.store.count(&moved("unavailable")).await?;
    let circuit_open = rig.store.count(&moved("circuit_open")).await?;
    let phases = |counts: &[usize]| {
        counts
            .windows(2)
            .map(|w| (w[1] - w[0]).to_string())
            .collect::<Vec<_>>()
            .join(" / ")
    };
    let refunds = |b: &Books| b.refunds.len();
    let max_recovery = recoveries.iter().max().copied().unwrap_or_default();
    println!(
        "| route | Stripe refusing connections, then charging and answering 500 | API kills (restart to ready, max) | requests sent | final answers | payments stored | moved on from Stripe: not reached / circuit open | charges at Stripe: before / refusing / failing / after | charges at PayPal: same phases | refunds at Stripe / PayPal | Stripe charging again after | charged twice | provider's books ≠ store's | lost | duplicated | half-written | events lost | settle / drain |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {}: stripe → paypal | {seconds} s, then {FAILING} s | {} + 1 ({} ms) | {} | {} | {} | {unavailable} / {circuit_open} | {} / {} | {} / {} | {} / {} | {} | {} | {} | {} | {} | {} | {} | {:.1} s / {:.1} s |",
        rig.label,
        kills,
        max_recovery.as_millis(),
        done.attempts.len(),
        finals(&done.attempts),
        report.payments,
        at_stripe[0],
        phases(&at_stripe),
        at_paypal[0],
        phases(&at_paypal),
        refunds(&books[0].1),
        refunds(&books[1].1),
        back.map_or("not within 90 s".to_owned(), |t| format!(
            "{:.1} s",
            t.as_secs_f64()
        )),
        audited.charged_twice,
        audited.disagreements,
        report.lost,
        report.duplicated,
        report.half_written,
        report.events_lost,
        settled.as_secs_f64(),
        drain.as_secs_f64(),
    );
    let moved_to_paypal = at_paypal[1] - at_paypal[0];
    conclude(rig, &done, &report).await?;
    if unavailable + circuit_open == 0 || moved_to_paypal == 0 {
        bail!("no charge moved to PayPal while Stripe was down: the run did not test failover");
    }
    Ok(())
}
