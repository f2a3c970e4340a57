"""What the web service and the dashboard expose (issue 9): security headers on every answer, a
Content-Security-Policy the pages really live within, the API docs only in sandbox mode, and a
dashboard that listens on this machine only and shows no deploy toolbar."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from core import config
from tests.servers import free_port, serve

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = sorted((REPO_ROOT / "webhook_service" / "templates").glob("*.html"))
EXPECTED = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


def _policy(response: requests.Response) -> dict[str, str]:
    header = response.headers.get("content-security-policy", "")
    return {part.split()[0]: " ".join(part.split()[1:]) for part in header.split(";") if part.strip()}


def assert_protected(response: requests.Response, where: str) -> None:
    for name, value in EXPECTED.items():
        assert response.headers.get(name) == value, (where, name, response.headers.get(name))
    policy = _policy(response)
    assert policy.get("default-src") == "'none'", (where, policy)
    assert policy.get("script-src") == "'self'", (where, policy)  # our own files only: nothing inline
    assert policy.get("style-src") == "'self'", (where, policy)
    assert policy.get("frame-ancestors") == "'none'" and policy.get("base-uri") == "'none'", (where, policy)


def test_every_kind_of_answer_carries_the_security_headers(live):
    browser = live.signed_in_client()
    booking_id, _ = live.start_booking(browser)
    answers = {
        "start page": browser.get(f"{live.web}/", timeout=30),
        "profile": browser.get(f"{live.web}/profile/{live.builder_id}", timeout=30),
        "sign-in form": requests.get(f"{live.web}/login", timeout=30),
        "payment page": browser.get(f"{live.web}/payment/{booking_id}", timeout=30),
        "someone else's booking": requests.get(f"{live.web}/payment/{booking_id}", timeout=30),
        "404 page": requests.get(f"{live.web}/payment/bk_00000000000000000000", timeout=30),
        "redirect": browser.post(f"{live.web}/bookings", allow_redirects=False, timeout=30, data={
            "event_type_id": live.event_type_ids[0], "csrf_token": "wrong"}),
        "JSON API": requests.get(f"{live.web}/api/bookings/{booking_id}", timeout=30),
        "stylesheet": requests.get(f"{live.web}/static/app.css", timeout=30),
        "health": requests.get(f"{live.web}/healthz", timeout=30),
    }
    for where, answer in answers.items():
        assert_protected(answer, where)
    assert answers["stylesheet"].status_code == 200
    assert answers["stylesheet"].headers["content-type"].startswith("text/css")


def test_the_pages_need_nothing_the_policy_forbids(live):
    """No inline script, style block, style attribute or event handler: the policy would block them
    (a page that looks broken), and none of them may come back later."""
    for template in TEMPLATES:
        text = template.read_text()
        # Scripts only as files of ours (the browser's time zone, /static/zone.js), never inline.
        outside = re.sub(r'<script src="/static/[a-z_]+\.js" defer></script>', "", text)
        assert "<script" not in outside.lower(), template.name
        assert "<style" not in text.lower(), template.name
        assert not re.search(r"\sstyle\s*=", text, re.I), template.name
        assert not re.search(r"\son[a-z]+\s*=", text, re.I), template.name
        assert not re.search(r"""(href|src)=["']https?://""", text), template.name  # nothing from elsewhere
    page = requests.get(f"{live.web}/login", timeout=30).text
    [sheet] = re.findall(r'<link rel="stylesheet" href="([^"]+)">', page)
    assert sheet == "/static/app.css"
    css = requests.get(f"{live.web}{sheet}", timeout=30).text
    assert ".btn" in css and "header .who" in css  # the styles the pages had inline are there


def _production_env(settings_env):
    return settings_env(sandbox="false", calendly_webhook_signing_key="k" * 32, stripe_secret_key="sk_live_x",
                        stripe_webhook_secret="whsec_x", admin_api_token="t" * 32, app_secret_key="s" * 40)


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"])
def test_the_api_docs_are_not_served_in_production(settings_env, engine, path):
    _production_env(settings_env)
    from webhook_service.app import create_app

    with serve(create_app()) as url:
        answer = requests.get(f"{url}{path}", timeout=30)
        health = requests.get(f"{url}/healthz", timeout=30)

    assert answer.status_code == 404, (path, answer.status_code)
    assert "swagger" not in answer.text.lower() and '"openapi"' not in answer.text
    assert health.status_code == 200  # the service itself is up


def test_the_api_docs_are_served_in_the_sandbox(live):
    assert requests.get(f"{live.web}/openapi.json", timeout=30).json()["info"]["title"]
    docs = requests.get(f"{live.web}/docs", timeout=30)
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    # Swagger UI from our own /static with our own init script: the docs keep a content policy too.
    assert "script-src 'self'" in docs.headers["content-security-policy"]
    assert "unsafe-inline" not in docs.headers["content-security-policy"]
    assert docs.headers["x-frame-options"] == "DENY"


# ---------------------------------------------------------------- the dashboard
def _dashboard_command(port: int) -> list[str]:
    line = next(line for line in (REPO_ROOT / "Procfile").read_text().splitlines() if line.startswith("dashboard:"))
    words = shlex.split(line.split(":", 1)[1])
    words[words.index("--server.port") + 1] = str(port)
    program = Path(sys.executable).parent / Path(words[0]).name  # the Procfile's .venv/bin/streamlit
    return [str(program), *words[1:]]


def _listening(port: int) -> set[str]:
    """The local addresses with a listening TCP socket on this port (from /proc, IPv4 and IPv6)."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        if not os.path.exists(table):
            continue
        for row in Path(table).read_text().splitlines()[1:]:
            local, state = row.split()[1], row.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address if width == 32 else ".".join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0)))
    return found


@pytest.mark.slow
def test_the_dashboard_listens_on_this_machine_only(db_url, tmp_path):
    port = free_port()
    names = {name.upper() for name in config.Settings.model_fields}
    environment = {k: v for k, v in os.environ.items() if k not in names and not k.startswith("STREAMLIT_")}
    environment.update(DATABASE_URL=db_url, SANDBOX="true", PYTHONPATH=str(REPO_ROOT))
    process = subprocess.Popen(_dashboard_command(port), cwd=REPO_ROOT, env=environment, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while True:
            assert process.poll() is None, "the dashboard exited"
            try:
                if requests.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).text == "ok":
                    break
            except requests.ConnectionError:
                pass
            assert time.time() < deadline, "the dashboard did not start"
            time.sleep(0.2)
        assert _listening(port) == {"127.0.0.1"}
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_dashboard_hides_the_deploy_toolbar_whatever_the_working_directory(tmp_path):
    probe = (
        "from streamlit import config\n"
        f"config._main_script_path = {str(REPO_ROOT / 'dashboard' / 'streamlit_app.py')!r}\n"
        "config.get_config_options(force_reparse=True)\n"
        "print(config.get_option('client.toolbarMode'), config.get_option('server.address'))\n"
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_")}
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=environment, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["minimal", "127.0.0.1"]
