"""The SDKs coding agents are built on, against a real gateway process: the official `openai` SDK's Responses API
(`client.responses.create`, streamed and not, with a function-call round trip) and the official `anthropic` SDK's
Messages API (`messages.create`, `messages.stream`, tools with a `tool_result` round trip, `count_tokens`), and
the official `google-genai` SDK against the Gemini surface (`generate_content`, `generate_content_stream`, a
function-call round trip, `count_tokens`, errors).

Run by scripts/test.sh after test_openai_sdk.py; reuses its gateway process (mock provider, declarative config).
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import urllib.parse
import urllib.request

import anthropic
import openai
from prometheus_client.parser import text_string_to_metric_families
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types
from openai import OpenAI

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_openai_sdk import GATEWAY_KEY, METRICS_TOKEN, GatewayProcess  # noqa: E402

WEATHER_TOOL_RESPONSES = {
    "type": "function", "name": "get_weather", "description": "Weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
WEATHER_TOOL_ANTHROPIC = {
    "name": "get_weather", "description": "Weather of a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


class AgentSdkTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.proc = GatewayProcess().__enter__()
        cls.openai = OpenAI(base_url=cls.proc.base + "/v1", api_key=GATEWAY_KEY, max_retries=0)
        cls.anthropic = anthropic.Anthropic(base_url=cls.proc.base, api_key=GATEWAY_KEY, max_retries=0)
        cls.gemini = genai.Client(api_key=GATEWAY_KEY, http_options=genai_types.HttpOptions(base_url=cls.proc.base))

    @classmethod
    def tearDownClass(cls):
        cls.proc.__exit__(None, None, None)

    # --- OpenAI Responses ---------------------------------------------------------------------------------------

    def test_responses_create(self):
        r = self.openai.responses.create(model="mock-model", instructions="Be brief.", input="Hello!")
        self.assertEqual(r.status, "completed")
        self.assertEqual(r.output_text, "Hello from mock.")
        self.assertGreater(r.usage.total_tokens, 0)

    def test_responses_stream(self):
        deltas, final = [], None
        with self.openai.responses.stream(model="mock-model", input="Stream please") as stream:
            for event in stream:
                if event.type == "response.output_text.delta":
                    deltas.append(event.delta)
            final = stream.get_final_response()
        self.assertEqual("".join(deltas), "tok0 tok1 tok2 tok3 tok4 ")
        self.assertEqual(final.output_text, "tok0 tok1 tok2 tok3 tok4 ")
        self.assertEqual(final.status, "completed")
        self.assertGreater(final.usage.output_tokens, 0)

    def test_responses_function_call_round_trip(self):
        first = self.openai.responses.create(
            model="tool-model", input="Weather in Paris?", tools=[WEATHER_TOOL_RESPONSES], store=False,
        )
        calls = [item for item in first.output if item.type == "function_call"]
        self.assertEqual(len(calls), 1)
        self.assertEqual(calls[0].name, "get_weather")
        self.assertEqual(json.loads(calls[0].arguments), {"city": "Paris"})
        history = [{"role": "user", "content": "Weather in Paris?"}]
        history += [item.model_dump(exclude_none=True) for item in first.output]
        history.append({"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny, 21 C"})
        second = self.openai.responses.create(model="mock-model", input=history)
        self.assertEqual(second.output_text, "Hello from mock.")

    def test_responses_streamed_function_call(self):
        with self.openai.responses.stream(
            model="tool-model", input="Weather in Paris?", tools=[WEATHER_TOOL_RESPONSES],
        ) as stream:
            final = stream.get_final_response()
        calls = [item for item in final.output if item.type == "function_call"]
        self.assertEqual(json.loads(calls[0].arguments), {"city": "Paris"})

    def test_responses_stateless_refusal(self):
        with self.assertRaises(openai.BadRequestError) as caught:
            self.openai.responses.create(model="mock-model", input="hi", previous_response_id="resp_123")
        self.assertEqual(caught.exception.param, "previous_response_id")

    # --- Anthropic Messages -------------------------------------------------------------------------------------

    def test_messages_create(self):
        r = self.anthropic.messages.create(
            model="mock-model", max_tokens=100, system="Be brief.",
            messages=[{"role": "user", "content": "Hello!"}],
        )
        self.assertEqual(r.content[0].type, "text")
        self.assertEqual(r.content[0].text, "Hello from mock.")
        self.assertEqual(r.stop_reason, "end_turn")
        self.assertGreater(r.usage.output_tokens, 0)

    def test_messages_stream(self):
        with self.anthropic.messages.stream(
            model="mock-model", max_tokens=100, messages=[{"role": "user", "content": "Stream please"}],
        ) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
        self.assertEqual(text, "tok0 tok1 tok2 tok3 tok4 ")
        self.assertEqual(final.content[0].text, text)
        self.assertEqual(final.stop_reason, "end_turn")

    def test_messages_tool_use_round_trip(self):
        first = self.anthropic.messages.create(
            model="tool-model", max_tokens=200, tools=[WEATHER_TOOL_ANTHROPIC],
            messages=[{"role": "user", "content": "Weather in Paris?"}],
        )
        self.assertEqual(first.stop_reason, "tool_use")
        tool_use = next(b for b in first.content if b.type == "tool_use")
        self.assertEqual(tool_use.input, {"city": "Paris"})
        second = self.anthropic.messages.create(
            model="mock-model", max_tokens=200, tools=[WEATHER_TOOL_ANTHROPIC],
            messages=[
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": tool_use.id, "content": "sunny, 21 C"},
                    {"type": "text", "text": "Summarise."},
                ]},
            ],
        )
        self.assertEqual(second.content[0].text, "Hello from mock.")

    def test_messages_streamed_tool_use(self):
        with self.anthropic.messages.stream(
            model="tool-model", max_tokens=200, tools=[WEATHER_TOOL_ANTHROPIC],
            messages=[{"role": "user", "content": "Weather in Paris?"}],
        ) as stream:
            final = stream.get_final_message()
        tool_use = next(b for b in final.content if b.type == "tool_use")
        self.assertEqual(tool_use.name, "get_weather")
        self.assertEqual(tool_use.input, {"city": "Paris"})
        self.assertEqual(final.stop_reason, "tool_use")

    def test_count_tokens_and_errors(self):
        n = self.anthropic.messages.count_tokens(
            model="mock-model", messages=[{"role": "user", "content": "Hello there " * 50}],
        )
        self.assertGreater(n.input_tokens, 50)
        with self.assertRaises(anthropic.NotFoundError):
            self.anthropic.messages.create(
                model="no-such-model", max_tokens=10, messages=[{"role": "user", "content": "hi"}],
            )
        bad = anthropic.Anthropic(base_url=self.proc.base, api_key="freellmapi-wrong", max_retries=0)
        with self.assertRaises(anthropic.AuthenticationError):
            bad.messages.create(model="mock-model", max_tokens=10, messages=[{"role": "user", "content": "hi"}])

    # --- Gemini (google-genai) ----------------------------------------------------------------------------------

    def test_gemini_generate_content(self):
        r = self.gemini.models.generate_content(
            model="mock-model", contents="Hello!",
            config=genai_types.GenerateContentConfig(system_instruction="Be brief.", max_output_tokens=100),
        )
        self.assertEqual(r.text, "Hello from mock.")
        self.assertEqual(r.candidates[0].finish_reason, genai_types.FinishReason.STOP)
        self.assertGreater(r.usage_metadata.total_token_count, 0)

    def test_gemini_stream(self):
        chunks = list(self.gemini.models.generate_content_stream(model="mock-model", contents="Stream please"))
        self.assertEqual("".join(c.text or "" for c in chunks), "tok0 tok1 tok2 tok3 tok4 ")
        self.assertEqual(chunks[-1].candidates[0].finish_reason, genai_types.FinishReason.STOP)

    def test_gemini_function_call_round_trip(self):
        weather = genai_types.Tool(function_declarations=[genai_types.FunctionDeclaration(
            name="get_weather", description="Weather of a city",
            parameters_json_schema={"type": "object", "properties": {"city": {"type": "string"}}},
        )])
        config = genai_types.GenerateContentConfig(
            tools=[weather],
            automatic_function_calling=genai_types.AutomaticFunctionCallingConfig(disable=True),
        )
        first = self.gemini.models.generate_content(model="tool-model", contents="Weather in Paris?", config=config)
        calls = first.function_calls
        self.assertEqual(len(calls), 1)
        self.assertEqual(calls[0].name, "get_weather")
        self.assertEqual(calls[0].args, {"city": "Paris"})
        history = [
            genai_types.Content(role="user", parts=[genai_types.Part(text="Weather in Paris?")]),
            first.candidates[0].content,
            genai_types.Content(role="user", parts=[genai_types.Part.from_function_response(
                name="get_weather", response={"output": "sunny, 21 C"})]),
        ]
        second = self.gemini.models.generate_content(model="mock-model", contents=history, config=config)
        self.assertEqual(second.text, "Hello from mock.")

    def test_gemini_count_tokens_and_errors(self):
        n = self.gemini.models.count_tokens(model="mock-model", contents="Hello there " * 50)
        self.assertGreater(n.total_tokens, 50)
        with self.assertRaises(genai_errors.ClientError) as caught:
            self.gemini.models.generate_content(model="no-such-model", contents="hi")
        self.assertEqual(caught.exception.code, 404)
        bad = genai.Client(api_key="freellmapi-wrong", http_options=genai_types.HttpOptions(base_url=self.proc.base))
        with self.assertRaises(genai_errors.ClientError) as caught:
            bad.models.generate_content(model="mock-model", contents="hi")
        self.assertEqual(caught.exception.code, 401)

    # --- Prometheus scrape ---------------------------------------------------------------------------------------

    def test_zz_metrics_scrape_parses_and_counts_every_surface(self):
        request = urllib.request.Request(
            self.proc.base + "/metrics", headers={"Authorization": "Bearer " + METRICS_TOKEN})
        with urllib.request.urlopen(request, timeout=10) as r:
            self.assertTrue(r.headers["Content-Type"].startswith("text/plain; version=0.0.4"))
            text = r.read().decode()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        requests = families["freellmapi_requests"]
        self.assertEqual(requests.type, "counter")
        surfaces = {s.labels["surface"] for s in requests.samples if s.labels.get("status") == "success"}
        # The tests above (sorted before this one) went through every agent surface.
        self.assertTrue({"responses", "messages", "gemini"} <= surfaces, surfaces)
        self.assertEqual(families["freellmapi_request_duration_seconds"].type, "histogram")
        self.assertIn("freellmapi_queue_depth", families)

    def test_zz_metrics_pass_promtool_and_a_real_prometheus_scrapes_them(self):
        """`promtool check metrics` accepts a scrape, and a real Prometheus server scrapes the gateway with the
        bearer token and can query its series. Debian's `prometheus` package ships both (.ci/run installs it)."""
        promtool, server = shutil.which("promtool"), shutil.which("prometheus")
        if not (promtool and server):
            notice = "promtool/prometheus are not installed: the Prometheus checks did NOT run"
            if os.environ.get("FREELLMAPI_REQUIRE_PROMETHEUS") == "1":
                self.fail(notice)
            print("\n!!!! NOTICE: " + notice + " !!!!", file=sys.stderr)
            return
        request = urllib.request.Request(
            self.proc.base + "/metrics", headers={"Authorization": "Bearer " + METRICS_TOKEN})
        with urllib.request.urlopen(request, timeout=10) as r:
            text = r.read()
        check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=60)
        self.assertEqual(check.returncode, 0, check.stdout.decode() + check.stderr.decode())

        with tempfile.TemporaryDirectory() as work:
            port = free_port()
            target = self.proc.base.split("://", 1)[1]
            config = os.path.join(work, "prometheus.yml")
            with open(config, "w") as f:
                f.write(
                    "global:\n  scrape_interval: 1s\n"
                    "scrape_configs:\n  - job_name: freellmapi\n"
                    f"    authorization:\n      credentials: {METRICS_TOKEN}\n"
                    f"    static_configs:\n      - targets: ['{target}']\n"
                )
            proc = subprocess.Popen(
                [server, f"--config.file={config}", f"--storage.tsdb.path={work}/data",
                 f"--web.listen-address=127.0.0.1:{port}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                query = "sum(freellmapi_requests_total)"
                url = f"http://127.0.0.1:{port}/api/v1/query?query=" + urllib.parse.quote(query)
                deadline = time.time() + 60
                result = []
                while time.time() < deadline and not result:
                    time.sleep(0.5)
                    try:
                        with urllib.request.urlopen(url, timeout=5) as r:
                            result = json.load(r)["data"]["result"]
                    except OSError:
                        continue
                self.assertTrue(result, "Prometheus did not scrape the gateway within 60 s")
                self.assertGreater(float(result[0]["value"][1]), 0)
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{port}/api/v1/query?query=up%7Bjob%3D%22freellmapi%22%7D",
                        timeout=5) as r:
                    up = json.load(r)["data"]["result"]
                self.assertEqual(up[0]["value"][1], "1", up)
            finally:
                proc.terminate()
                proc.wait(timeout=30)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    unittest.main(verbosity=2)
