"""Figure 2: the whole flow's overhead, eligible -> shipping, against the real simulator.

The app runs inline (every call to Align in the calling thread) and is served over HTTP
from this process, so the simulator reads asset lists from it and delivers its events to
it; the simulator adds no latency and moves each case on at once (`delay_ms` 0). The
baseline is the same sequence of contract calls issued bare with `requests` against the
same simulator (bench/flow.py), with a bare stand-in app answering asset lists and
events. Both run in rounds, alternating which goes first; the ratio is total flow time
over total bare time. The simulator's effect counters confirm both made the same calls.
"""

from . import flow
from .report import Row, timed

ROUNDS = 3
TIMEOUT_S = 120


def run(scale=1.0):
    skipped = flow.needs_postgres("2 flow")
    if skipped:
        return [skipped]
    n = max(2 * ROUNDS, int(300 * scale))
    per_round = [n // ROUNDS + (1 if r < n % ROUNDS else 0) for r in range(ROUNDS)]
    flow.flags_on()
    staff, provider_user = flow.people("F2")
    screenshot = flow.screenshot_data_url()
    jpeg = flow.screenshot_jpeg(screenshot)
    cases = flow.make_cases(n, "F2", provider_user)
    warm = flow.make_cases(2, "F2W", provider_user)

    app_times, bare_times = [], []
    app_cpu, bare_cpu, app_busy, bare_busy = [], [], [], []
    app_sql = []  # (statements, committed transactions) per app round
    with flow.Simulator() as sim, flow.AppServer() as app, flow.BareApp() as bare:
        flow.use_simulator(sim)
        # Warm up both paths (imports, connections, the token) on throwaway cases.
        flow.point_simulator_at(sim, app.url)
        flow.run_flow(warm, staff, provider_user, screenshot, TIMEOUT_S)
        flow.point_simulator_at(sim, bare.url)
        flow.run_bare_flow(sim.url, bare, 9_000_000, 2, jpeg, TIMEOUT_S)

        app_effects = {name: 0 for name in flow.EFFECTS}
        bare_effects = dict(app_effects)
        start = 0
        for r, size in enumerate(per_round):
            chunk = cases[start : start + size]
            first_bare_id = 10_000_000 + start
            start += size

            def app_round(chunk=chunk):
                flow.point_simulator_at(sim, app.url)
                before = flow.effects(sim)
                meter = flow.CpuMeter().start()
                counter = flow.StatementCounter().start()
                app_times.append(timed(flow.run_flow, chunk, staff, provider_user, screenshot, TIMEOUT_S))
                counter.stop()
                meter.stop()
                app_sql.append((counter.statements, counter.commits))
                app_cpu.append(meter.cpu)
                app_busy.append(meter.busy or 0)
                for name, value in flow.difference(flow.effects(sim), before).items():
                    app_effects[name] += value

            def bare_round(chunk=chunk, first=first_bare_id):
                flow.point_simulator_at(sim, bare.url)
                before = flow.effects(sim)
                meter = flow.CpuMeter().start()
                bare_times.append(timed(flow.run_bare_flow, sim.url, bare, first, len(chunk), jpeg, TIMEOUT_S))
                meter.stop()
                bare_cpu.append(meter.cpu)
                bare_busy.append(meter.busy or 0)
                for name, value in flow.difference(flow.effects(sim), before).items():
                    bare_effects[name] += value

            for variant in (app_round, bare_round) if r % 2 == 0 else (bare_round, app_round):
                variant()

    # The token is fetched once by each (the app's is shared through the cache).
    same = {k: v for k, v in app_effects.items() if k != "tokens"} == {
        k: v for k, v in bare_effects.items() if k != "tokens"
    }
    if not same:
        raise RuntimeError(f"the flow and the bare calls differ: {app_effects} vs {bare_effects}")
    t_app, t_bare = sum(app_times), sum(bare_times)
    ratio = t_app / t_bare
    calls = sum(v for k, v in app_effects.items() if k != "tokens") // n
    return [
        Row(
            "2 flow",
            f"{n} cases eligible -> shipping, inline, no latency",
            f"{n / t_app:.1f} cases/s",
            f"{n / t_bare:.1f} cases/s bare",
            ratio,
            "<= 2.0",
            ratio <= 2.0,
        ),
        Row(
            "2 flow",
            f"time per case ({calls} calls to Align, 8 events)",
            f"{t_app / n * 1000:.1f} ms",
            f"{t_bare / n * 1000:.1f} ms bare",
            ratio,
            "report",
        ),
        Row(
            "2 flow",
            "CPU of this process per case (the app and its HTTP server / bare)",
            f"{sum(app_cpu) / n * 1000:.1f} ms",
            f"{sum(bare_cpu) / n * 1000:.1f} ms bare",
            None,
            "report",
        ),
        Row(
            "2 flow",
            "SQL statements per case (every thread of the app; BEGIN/COMMIT not counted)",
            f"{sum(s for s, _ in app_sql) / n:.0f}",
            "none bare",
            None,
            "report",
        ),
        Row(
            "2 flow",
            "transactions committed per case (a statement outside one counts as one)",
            f"{sum(c for _, c in app_sql) / n:.0f}",
            "none bare",
            None,
            "report",
        ),
        Row(
            "2 flow",
            "the machine's CPU busy (both cores, every process)",
            flow.percent(sum(b * t for b, t in zip(app_busy, app_times, strict=True)) / t_app),
            flow.percent(sum(b * t for b, t in zip(bare_busy, bare_times, strict=True)) / t_bare) + " bare",
            None,
            "report",
        ),
    ]
