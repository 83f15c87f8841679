"""The approvals page, driven in real headless Chromium (Debian's chromium, chromium-driver and python3-selenium).

A requester follows the link in a real curl's 403, signs in and adds a justification; an approver signs in, finds
the request on the pending page, picks a scope and a duration and approves; curl's retry passes; the approver
revokes on the grants page and curl is denied again. A form post without the CSRF token is refused, and the
session cookie is HttpOnly, Secure and SameSite=Strict. Every page is saved as a PNG screenshot, at a laptop size
and a phone size, in $EGRESSD_ARTIFACTS.
"""

import os
import re
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse


def _run_under_a_python_with_selenium():
    """CI runs Debian's python3, which has python3-selenium; a development machine's first python3 may be another
    one (pyenv, a venv). Then this test re-runs itself, same arguments, under /usr/bin/python3 if that has it."""
    try:
        import selenium  # noqa: F401
        return
    except ImportError:
        pass
    system = "/usr/bin/python3"
    if os.environ.get("EGRESSD_E2E_SELENIUM_PYTHON") or not os.path.exists(system) or \
            not hasattr(sys, "orig_argv") or os.path.realpath(sys.executable) == os.path.realpath(system):
        return
    probe = subprocess.run([system, "-c", "import selenium"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        return
    os.environ["EGRESSD_E2E_SELENIUM_PYTHON"] = system
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(system, [system] + list(sys.orig_argv[1:]))


_run_under_a_python_with_selenium()

import harness  # noqa: E402
import test_approvals  # noqa: E402

harness.isolate_network()

# Neither Selenium's connection to chromedriver nor Chromium may go through a proxy from the environment.
for _name in [k for k in os.environ if "proxy" in k.lower()]:
    del os.environ[_name]

try:
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import Select, WebDriverWait
    SELENIUM = True
except ImportError:
    SELENIUM = False

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
LAPTOP = (1280, 900)
PHONE = (390, 844)
USERS = test_approvals.USERS
REQUESTERS = test_approvals.REQUESTERS


def missing_browser():
    """Why the browser tests cannot run here, or None."""
    if not SELENIUM:
        return "python3-selenium is not installed (apt-get install python3-selenium)"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            return "%s is missing (apt-get install chromium chromium-driver)" % path
    return None


def artifacts_dir():
    d = os.environ.get("EGRESSD_ARTIFACTS") or os.path.join(tempfile.gettempdir(), "egressd-e2e-artifacts")
    os.makedirs(d, exist_ok=True)
    return d


@unittest.skipIf(missing_browser() is not None, missing_browser() or "")
class ApprovalsPageTest(test_approvals.ApprovalsBase):
    """The page on a port chosen beforehand, without public_url: the 403's link is the default public URL."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    "--disable-background-networking", "--disable-extensions", "--disable-sync",
                    "--no-first-run", "--no-default-browser-check", "--no-proxy-server",
                    "--window-size=%d,%d" % LAPTOP, "--user-data-dir=" + os.path.join(cls.class_tmp.name, "chrome")):
            options.add_argument(arg)
        service = Service(executable_path=CHROMEDRIVER, log_path=os.path.join(cls.class_tmp.name, "chromedriver.log"))
        cls.driver = webdriver.Chrome(service=service, options=options)
        cls.driver.set_page_load_timeout(15)
        cls.driver.implicitly_wait(0)

    @classmethod
    def tearDownClass(cls):
        driver = getattr(cls, "driver", None)
        if driver is not None:
            driver.quit()
        super().tearDownClass()

    def setUp(self):
        self.page_port = harness.free_port()
        super().setUp()
        self.base = "http://127.0.0.1:%d" % self.page_port
        self.driver.delete_all_cookies()
        self.viewport(LAPTOP)

    def extra_yaml(self):
        if self.store_path is None:
            self.store_path = os.path.join(self.tmp.name, "approvals.db")
        settings = self.approvals_settings()
        del settings["public_url"]
        return harness.approvals_yaml(self.store_path, self.approvers_file, self.requesters_file,
                                      listen="127.0.0.1:%d" % self.page_port, **settings)

    # -- the browser -----------------------------------------------------------------------------------
    def viewport(self, size):
        width, height = size
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": size == PHONE})

    def shoot(self, name):
        """The current page at both sizes: <name>-laptop.png and <name>-phone.png in the artifacts directory."""
        paths = []
        for label, size in (("laptop", LAPTOP), ("phone", PHONE)):
            self.viewport(size)
            time.sleep(0.1)  # one layout at the new size
            path = os.path.join(artifacts_dir(), "%s-%s.png" % (name, label))
            self.assertTrue(self.driver.save_screenshot(path), path)
            paths.append(path)
        self.viewport(LAPTOP)
        return paths

    def wait(self, condition, timeout=10, what="the page"):
        try:
            return WebDriverWait(self.driver, timeout).until(condition)
        except TimeoutException:
            self.fail("timed out waiting for %s; at %s:\n%s" % (what, self.driver.current_url,
                                                                self.driver.page_source[:3000]))

    def open(self, url):
        self.driver.get(url)
        self.wait(lambda d: d.execute_script("return document.readyState") == "complete")

    def submit(self, button):
        """Clicks a submit button and waits for the page it leads to."""
        old = self.driver.find_element(By.TAG_NAME, "html")
        button.click()
        self.wait(expected_conditions.staleness_of(old), what="the page after the form")
        self.wait(lambda d: d.execute_script("return document.readyState") == "complete")

    def sign_in(self, user, password):
        self.open(self.base + "/login")
        self.driver.find_element(By.ID, "user").send_keys(user)
        self.driver.find_element(By.ID, "password").send_keys(password)
        self.submit(self.driver.find_element(By.CSS_SELECTOR, "form[action='/login'] button[type=submit]"))
        self.assertFalse(urllib.parse.urlsplit(self.driver.current_url).path.startswith("/login"),
                         "sign-in as %s failed: %s" % (user, self.driver.page_source[:2000]))

    def sign_out(self):
        buttons = self.driver.find_elements(By.CSS_SELECTOR, "form[action='/logout'] button")
        self.assertTrue(buttons, "no sign-out button")
        self.submit(buttons[0])
        self.driver.delete_all_cookies()

    def body_text(self):
        return self.driver.find_element(By.TAG_NAME, "body").text

    # -- curl through the proxy ------------------------------------------------------------------------
    def curl_hello(self, host="api.req.test"):
        url = "http://%s:%d/hello" % (host, self.upstream.port)
        return harness.curl("-i", "-x", "http://127.0.0.1:%d" % self.proxy.port, url)

    def curl_refused(self, host="api.req.test"):
        proc = self.curl_hello(host)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertTrue(proc.stdout.startswith(b"HTTP/1.1 403"), proc.stdout)
        return proc.stdout.decode("utf-8", "replace")

    def curl_passes_within(self, seconds, host="api.req.test"):
        start = time.monotonic()
        proc = None
        for _ in range(1000):
            proc = self.curl_hello(host)
            if proc.stdout.startswith(b"HTTP/1.1 200"):
                self.assertTrue(proc.stdout.endswith(b"hello"), proc.stdout)
                return time.monotonic() - start
            if time.monotonic() - start > seconds:
                break
            time.sleep(0.02)
        self.fail("curl still refused %.1fs after the approval: %r" % (seconds, proc.stdout[:500]))

    # -- tests -----------------------------------------------------------------------------------------
    def test_request_justify_approve_revoke_in_the_browser(self):
        # A workload's curl is refused; the 403 says where to ask.
        text = self.curl_refused()
        rid = re.search(r"(?im)^X-Egressd-Access-Request:\s*(\d+)\s*$", text)
        self.assertIsNotNone(rid, text)
        rid = rid.group(1)
        url = re.search(r"(https?://\S+/requests/%s)\b" % rid, text)
        self.assertIsNotNone(url, text)
        url = url.group(1)
        self.assertEqual(url, "%s/requests/%s" % (self.base, rid), "the 403's link is not the page's address")

        # Not signed in: the link leads to the sign-in page.
        self.open(url)
        self.assertEqual(urllib.parse.urlsplit(self.driver.current_url).path, "/login")
        self.shoot("login")

        # The requester signs in, follows the link and justifies.
        self.sign_in("rita", REQUESTERS["rita"])
        self.open(url)
        self.assertIn("api.req.test", self.body_text())
        self.assertEqual(self.driver.find_elements(By.CSS_SELECTOR, "form[action$='/approve']"), [],
                         "a requester is offered the approve form")
        self.driver.find_element(By.ID, "justify-text").send_keys("TICKET-7: the billing export needs this API")
        self.submit(self.driver.find_element(By.CSS_SELECTOR, "form[action$='/justify'] button[type=submit]"))
        self.assertIn("TICKET-7: the billing export needs this API", self.body_text())
        self.shoot("request-requester")
        self.sign_out()

        # The approver signs in and sees it pending, with its justification.
        self.sign_in("alice", USERS["alice"])
        self.open(self.base + "/")
        pending = self.body_text()
        self.assertIn("api.req.test", pending)
        self.assertIn("TICKET-7", pending)
        self.shoot("pending")
        link = self.driver.find_element(By.CSS_SELECTOR, "a[href='/requests/%s']" % rid)
        self.submit(link)
        self.assertEqual(urllib.parse.urlsplit(self.driver.current_url).path, "/requests/%s" % rid)
        self.shoot("request-approver")

        # A wider scope, this client, two minutes.
        form = self.driver.find_element(By.CSS_SELECTOR, "form[action$='/approve']")
        radios = form.find_elements(By.CSS_SELECTOR, "input[type=radio][name=destination]")
        values = [r.get_attribute("value") for r in radios]
        self.assertIn("api.req.test", values)
        wider = [v for v in values if v != "api.req.test"]
        self.assertTrue(wider, "no wider scope offered: %r" % values)
        chosen = "*.req.test" if "*.req.test" in values else wider[0]
        radio = radios[values.index(chosen)]
        self.driver.find_element(By.CSS_SELECTOR, "label[for='%s']" % radio.get_attribute("id")).click()
        self.assertTrue(radio.is_selected())
        Select(form.find_element(By.NAME, "group")).select_by_value("")
        duration = form.find_element(By.NAME, "duration")
        duration.clear()
        duration.send_keys("2m")
        form.find_element(By.NAME, "note").send_keys("approved in the browser")
        self.submit(form.find_element(By.CSS_SELECTOR, "button[type=submit]"))
        latency = self.curl_passes_within(1.0)
        print("\nPAGE APPROVAL-TO-ALLOWED (curl): %.0f ms" % (latency * 1000), flush=True)
        grants = self.api.grants("active")
        self.assertEqual([(g["request_id"], g["destination"], g["approved_by"]) for g in grants],
                         [(int(rid), chosen, "alice")], grants)
        self.assertTrue(110 <= grants[0]["seconds_left"] <= 120, grants)
        self.assertEqual(self.proxy.wait_event(event="egress.allow", host="api.req.test")["reason"], "granted")
        self.shoot("request-approved")

        # The grants page: revoke.
        self.open(self.base + "/grants")
        self.assertIn("api.req.test", self.body_text().replace("*.req.test", "api.req.test"))
        self.shoot("grants")
        gid = grants[0]["id"]
        self.driver.find_element(By.CSS_SELECTOR, "details.actions summary").click()
        self.shoot("grants-actions")
        self.driver.find_element(By.ID, "revoke-note-%d" % gid).send_keys("done with it")
        self.submit(self.driver.find_element(By.CSS_SELECTOR, "form[action='/grants/%d/revoke'] button" % gid))
        self.assertEqual(self.api.grants("active"), [])
        self.shoot("grants-after-revoke")
        revoked = self.proxy.wait_event(event="approval.revoked", timeout=5)
        self.assertEqual(revoked.get("actor", "alice"), "alice", revoked)
        # Applied at once: the next curl is refused (within a second).
        deadline = time.monotonic() + 1.0
        for _ in range(1000):
            proc = self.curl_hello()
            if proc.stdout.startswith(b"HTTP/1.1 403") or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        self.assertTrue(proc.stdout.startswith(b"HTTP/1.1 403"), proc.stdout[:300])

        self.open(self.base + "/history")
        history = self.body_text()
        for word in ("requested", "justified", "approved", "revoked"):
            self.assertIn(word, history.lower())
        self.shoot("history")
        self.open(self.base + "/history?request=%s" % rid)
        self.shoot("history-filtered")

    def test_form_post_without_csrf_refused_and_cookie_flags(self):
        rid = re.search(r"(?im)^X-Egressd-Access-Request:\s*(\d+)", self.curl_refused()).group(1)
        self.sign_in("alice", USERS["alice"])
        cookies = {c["name"]: c for c in self.driver.get_cookies()}
        self.assertIn("egressd_session", cookies, cookies)
        c = cookies["egressd_session"]
        self.assertEqual((c.get("httpOnly"), c.get("secure"), c.get("sameSite")), (True, True, "Strict"), c)
        self.assertEqual(c.get("path"), "/", c)
        session = "egressd_session=" + c["value"]
        client = harness.ApprovalsClient("127.0.0.1", self.page_port)
        form = "application/x-www-form-urlencoded"
        path = "/requests/%s/deny" % rid
        for body in (b"note=no+token", b"note=wrong+token&csrf=0123456789abcdef"):
            with self.subTest(body=body):
                resp = client.post(path, body=body, content_type=form, headers=[("Cookie", session)], auth=False)
                self.assertEqual(resp.status, 403, resp)
        self.assertEqual(self.api.requests("pending")[0]["state"], "pending")
        # The page's own token works: the refusal was about the token, not the post.
        self.open(self.base + "/requests/%s" % rid)
        token = self.driver.find_element(By.CSS_SELECTOR, "form[action$='/deny'] input[name=csrf]").get_attribute(
            "value")
        body = urllib.parse.urlencode({"csrf": token, "note": "with the token"}).encode()
        resp = client.post(path, body=body, content_type=form, headers=[("Cookie", session)], auth=False)
        self.assertIn(resp.status, (200, 303), resp)
        self.assertEqual(self.api.ok("GET", "/api/v1/requests/%s" % rid)["state"], "denied")
        # The page itself says what it allows: nothing from elsewhere.
        page = client.get("/", headers=[("Cookie", session)], auth=False)
        csp = page.header("Content-Security-Policy") or ""
        self.assertIn("default-src 'none'", csp, page)
        self.assertIn("frame-ancestors 'none'", csp, page)


if __name__ == "__main__":
    unittest.main()
