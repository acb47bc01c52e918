"""Page-load times of the clinicians' pages with 500 cases in the database.

    python bench/pages.py                 # hub on PostgreSQL (127.0.0.1:5432, database created and
    dropped)
    python bench/pages.py --sqlite        # the embedded default (see the README on SQLite under
    eventlet)

Starts a real hub (eventlet) and the spoke of PHC-1, raises the cases through the hub's REST API
(spread over specialties, priorities and the two spokes; some claimed and advised), then opens
each page in Debian's Chromium (/usr/bin/chromium): server time is the median of 5 plain HTTP
GETs with the page's session cookie; DOMContentLoaded and load are from the browser's
Navigation Timing, median of 3 loads. Prints one table.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.databases import fresh_database  # noqa: E402
from tests.support.hub import hub_process  # noqa: E402
from tests.support.processes import running  # noqa: E402
from tests.support.slice import start_spoke  # noqa: E402

SPECIALTIES = ["ortho", "radio", "med", "ent", "eye"]
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


def seed(hub_url: str, tokens: dict[str, str], n: int) -> int:
    """Raise ``n`` cases; advise every fifth. Returns the id of an orthopaedic case with advice."""
    rnd = random.Random(5)
    s = requests.Session()
    specialists = {}
    for code in SPECIALTIES:
        r = s.post(
            f"{hub_url}/api/v1/auth/token",
            json={"username": f"{code}1", "password": "demo"},
            timeout=30,
        )
        specialists[code] = {"Authorization": "Bearer " + r.json()["access_token"]}
    advised = 0
    for i in range(n):
        spoke = "PHC-1" if i % 3 else "PHC-2"
        specialty = rnd.choice(SPECIALTIES)
        body = {
            "patient": {
                "pseudonym": f"BENCH-{i:04d}",
                "age": rnd.randint(1, 90),
                "sex": rnd.choice(["male", "female"]),
            },
            "complaint": "Pain and swelling " * rnd.randint(1, 6),
            "history": "History " * 20,
            "vitals": {"pulse": rnd.randint(60, 120)},
            "question": "Manage here or refer?",
            "specialty": specialty,
            "priority": rnd.choice(["emergency"] + ["urgent"] * 3 + ["routine"] * 6),
        }
        r = s.post(
            f"{hub_url}/api/v1/cases",
            json=body,
            headers={"Authorization": "Bearer " + tokens[spoke]},
            timeout=30,
        )
        r.raise_for_status()
        case = r.json()
        if i % 5 == 0:
            h = specialists[specialty]
            if s.post(f"{hub_url}/api/v1/cases/{case['id']}/claim", headers=h, timeout=30).ok:
                a = s.post(
                    f"{hub_url}/api/v1/cases/{case['id']}/advice",
                    headers=h,
                    timeout=30,
                    json={
                        "assessment": "Assessment",
                        "recommendations": "Rest",
                        "disposition": "manage_locally",
                        "prescriptions": [
                            {
                                "drug": "Paracetamol",
                                "dose": "1 tablet",
                                "route": "oral",
                                "frequency": "tds",
                                "duration": "3 days",
                            }
                        ],
                    },
                )
                if a.ok and specialty == "ortho":
                    advised = advised or case["id"]
    return advised


def sign_in(page, url: str, form: str, user: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(url + form)
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", "demo")
    page.click("button[type=submit]")
    page.wait_for_load_state("load")


def measure(page, url: str) -> tuple[float, float, float, int]:  # type: ignore[no-untyped-def]
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    server = []
    for _ in range(5):
        t = time.perf_counter()
        r = requests.get(url, cookies=cookies, timeout=60)
        server.append((time.perf_counter() - t) * 1000)
    dcl, load = [], []
    for _ in range(3):
        page.goto(url, wait_until="load")
        timing = page.evaluate(
            "() => { const n = performance.getEntriesByType('navigation')[0];"
            " return [n.domContentLoadedEventEnd, n.loadEventEnd]; }"
        )
        dcl.append(timing[0])
        load.append(timing[1])
    return (
        statistics.median(server),
        statistics.median(dcl),
        statistics.median(load),
        len(r.content),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=500)
    parser.add_argument("--sqlite", action="store_true")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        url = stack.enter_context(fresh_database("sqlite" if args.sqlite else "postgresql", tmp))
        hub = stack.enter_context(hub_process(tmp, url, async_mode="eventlet"))
        spoke, spoke_url = start_spoke(tmp, hub)
        stack.enter_context(running(spoke))
        t0 = time.perf_counter()
        case_id = seed(hub.url, hub.spoke_tokens, args.cases)
        print(
            f"seeded {args.cases} cases in {time.perf_counter() - t0:.1f} s "
            f"({'SQLite' if args.sqlite else 'PostgreSQL'}, hub under eventlet)"
        )
        rows = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            for user, base, form, paths in (
                ("ortho1", hub.url, "/login", ["/worklist", f"/cases/{case_id}"]),
                ("sup1", hub.url, "/login", ["/dashboard", f"/cases/{case_id}"]),
                ("admin", hub.url, "/login", ["/admin/users", "/admin/duty"]),
                ("clinic1", spoke_url, "/signin", ["/", "/cases/new"]),
            ):
                page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
                sign_in(page, base, form, user)
                for path in paths:
                    server, dcl, load, size = measure(page, base + path)
                    rows.append(
                        (
                            ("spoke " if base == spoke_url else "hub ") + path,
                            user,
                            server,
                            dcl,
                            load,
                            size,
                        )
                    )
                page.context.close()
            browser.close()
    print(
        "\n| page | user | server ms (p50) | DOMContentLoaded ms | load ms | HTML KiB "
        "|\n|---|---|---:|---:|---:|---:|"
    )
    for name, user, server, dcl, load, size in rows:
        print(f"| {name} | {user} | {server:.0f} | {dcl:.0f} | {load:.0f} | {size / 1024:.0f} |")


if __name__ == "__main__":
    main()
