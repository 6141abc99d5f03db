"""The official OpenAI Python SDK against a real gateway process in front of the mock provider.

Run by scripts/test.sh after the Rust tests. Starts `mock-provider` and `freellmapi` from target/<profile>/ on free
loopback ports, with a fresh data directory and a declarative config file, and stops both at the end.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

import openai
from openai import OpenAI

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROFILE = os.environ.get("FREELLMAPI_TEST_PROFILE", "debug")
BIN = os.path.join(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"), PROFILE)
GATEWAY_KEY = "freellmapi-sdk-test-0123456789abcdef01234567"
METRICS_TOKEN = "sdk-metrics-token-0123456789"


def _read_line_with(proc, needle, timeout):
    deadline = time.time() + timeout
    seen = []
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        if needle in line:
            return line
    raise RuntimeError(f"did not see {needle!r}; output so far:\n{''.join(seen)}")


class GatewayProcess:
    def __enter__(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.mock = subprocess.Popen(
            [os.path.join(BIN, "mock-provider"), "--listen", "127.0.0.1:0", "--chunks", "5"],
            stdout=subprocess.PIPE, text=True,
        )
        mock_url = _read_line_with(self.mock, "listening on", 10).split("listening on", 1)[1].strip()
        config = f"""
[[provider_keys]]
name = "mock"
platform = "custom"
key = "${{MOCK_PROVIDER_KEY}}"
base_url = "{mock_url}/ok/v1"
models = ["mock-model", "mock-embed"]

[[provider_keys]]
name = "throttled"
platform = "custom"
key = "sk-throttled"
base_url = "{mock_url}/429ra30/v1"
models = ["flaky-model", "always-limited"]

[[provider_keys]]
name = "backup"
platform = "custom"
base_url = "{mock_url}/ok/v1"
models = ["flaky-model"]

[[provider_keys]]
name = "tools"
platform = "custom"
base_url = "{mock_url}/tool/v1"
models = ["tool-model"]

# Native dialects: the mock serves Gemini at /<scenario>/v1beta/... and Cohere v2 at /<scenario>/v2/...
[[provider_keys]]
name = "gemini"
platform = "google"
key = "AIza-sdk-test-gemini-key"
base_url = "{mock_url}/ok/v1beta"
models = ["gemini-2.5-flash", "gemini-embedding-001"]

[[provider_keys]]
name = "gemini-tools"
platform = "google"
key = "AIza-sdk-test-gemini-key"
base_url = "{mock_url}/tool/v1beta"
models = ["gemini-2.5-flash-lite"]

[[provider_keys]]
name = "cohere"
platform = "cohere"
key = "co-sdk-test-cohere-key"
base_url = "{mock_url}/ok/v2"
models = ["command-a-03-2025", "embed-v4.0"]

[[provider_keys]]
name = "cohere-tools"
platform = "cohere"
key = "co-sdk-test-cohere-key"
base_url = "{mock_url}/tool/v2"
models = ["command-r7b-12-2024"]

[[gateway_keys]]
name = "sdk"
key = "{GATEWAY_KEY}"
"""
        config_path = os.path.join(self.tmp.name, "gateway.toml")
        with open(config_path, "w") as f:
            f.write(config)
        env = dict(os.environ)
        env.update({
            "PORT": "0",
            "DATA_DIR": os.path.join(self.tmp.name, "data"),
            "FREELLMAPI_CONFIG": config_path,
            "MOCK_PROVIDER_KEY": "sk-mock-provider-secret-value",
            "ADMIN_PASSWORD": "sdk-test-password",
            "LOG_FORMAT": "json",
            "PROXY_RATE_LIMIT_RPM": "0",
            "METRICS_TOKEN": METRICS_TOKEN,
        })
        env.pop("DATABASE_URL", None)
        env.pop("ENCRYPTION_KEY", None)
        self.gateway = subprocess.Popen(
            [os.path.join(BIN, "freellmapi"), "serve"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )
        line = _read_line_with(self.gateway, "listening on", 30)
        self.base = "http://" + json.loads(line)["address"]
        return self

    def __exit__(self, *exc):
        for proc in (self.gateway, self.mock):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.tmp.cleanup()


class OpenAISdkTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.proc = GatewayProcess().__enter__()
        cls.client = OpenAI(base_url=cls.proc.base + "/v1", api_key=GATEWAY_KEY, max_retries=0)

    @classmethod
    def tearDownClass(cls):
        cls.proc.__exit__(None, None, None)

    def test_models_list_and_retrieve(self):
        ids = [m.id for m in self.client.models.list()]
        self.assertEqual(ids[0], "auto")
        self.assertIn("mock-model", ids)
        self.assertEqual(self.client.models.retrieve("mock-model").id, "mock-model")
        with self.assertRaises(openai.NotFoundError):
            self.client.models.retrieve("no-such-model")

    def test_chat_completion(self):
        r = self.client.chat.completions.create(
            model="mock-model", messages=[{"role": "user", "content": "Hello!"}], temperature=0.1,
        )
        self.assertEqual(r.choices[0].message.content, "Hello from mock.")
        self.assertEqual(r.choices[0].finish_reason, "stop")
        self.assertGreater(r.usage.total_tokens, 0)

    def test_auto_model(self):
        r = self.client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "Hi"}])
        self.assertTrue(r.choices[0].message.content)

    def test_streaming_with_usage_and_headers(self):
        raw = self.client.chat.completions.with_raw_response.create(
            model="mock-model",
            messages=[{"role": "user", "content": "Stream please"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        self.assertEqual(raw.headers["x-freellmapi-provider"], "custom")
        self.assertEqual(raw.headers["x-freellmapi-model"], "mock-model")
        text, usage = "", None
        for chunk in raw.parse():
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
            if chunk.usage:
                usage = chunk.usage
        self.assertEqual(text, "tok0 tok1 tok2 tok3 tok4 ")
        self.assertIsNotNone(usage)

    def test_tool_calls_and_vision_content(self):
        tools = [{"type": "function", "function": {
            "name": "describe", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
        messages = [{"role": "user", "content": [
            {"type": "text", "text": "What is in this image?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ]}]
        r = self.client.chat.completions.create(model="tool-model", messages=messages, tools=tools)
        call = r.choices[0].message.tool_calls[0]
        self.assertEqual(call.function.name, "describe")
        self.assertEqual(json.loads(call.function.arguments), {"city": "Paris"})
        self.assertEqual(r.choices[0].finish_reason, "tool_calls")
        # Streamed tool-call deltas reassemble into the same call.
        name, args = "", ""
        for chunk in self.client.chat.completions.create(model="tool-model", messages=messages, tools=tools, stream=True):
            for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                name += tc.function.name or ""
                args += tc.function.arguments or ""
        self.assertEqual(name, "describe")
        self.assertEqual(json.loads(args), {"city": "Paris"})

    def test_embeddings(self):
        r = self.client.embeddings.create(model="mock-embed", input=["a", "b", "c"])
        self.assertEqual(len(r.data), 3)
        self.assertEqual(len(r.data[0].embedding), 4)

    def test_failover_is_invisible(self):
        r = self.client.chat.completions.create(model="flaky-model", messages=[{"role": "user", "content": "x"}])
        self.assertEqual(r.choices[0].message.content, "Hello from mock.")

    def test_errors_map_to_sdk_exceptions(self):
        with self.assertRaises(openai.NotFoundError) as e:
            self.client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
        self.assertEqual(e.exception.code, "model_not_found")
        with self.assertRaises(openai.RateLimitError) as e:
            self.client.chat.completions.create(model="always-limited", messages=[{"role": "user", "content": "x"}])
        self.assertIn("retry-after", {k.lower() for k in e.exception.response.headers.keys()})
        with self.assertRaises(openai.BadRequestError):
            self.client.chat.completions.create(model="mock-model", messages=[])
        bad = OpenAI(base_url=self.proc.base + "/v1", api_key="freellmapi-wrong", max_retries=0)
        with self.assertRaises(openai.AuthenticationError):
            bad.chat.completions.create(model="mock-model", messages=[{"role": "user", "content": "x"}])

    def test_native_dialects_chat_stream_tools_embeddings(self):
        """Gemini and Cohere keys behind the same OpenAI endpoint, through the official SDK."""
        tools = [{"type": "function", "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
        cases = [
            ("google", "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-embedding-001"),
            ("cohere", "command-a-03-2025", "command-r7b-12-2024", "embed-v4.0"),
        ]
        for provider, chat_model, tool_model, embed_model in cases:
            with self.subTest(provider=provider):
                messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello!"}]
                raw = self.client.chat.completions.with_raw_response.create(model=chat_model, messages=messages)
                self.assertEqual(raw.headers["x-freellmapi-provider"], provider)
                r = raw.parse()
                self.assertEqual(r.model, chat_model)
                self.assertEqual(r.choices[0].message.content, "Hello from mock.")
                self.assertEqual(r.choices[0].finish_reason, "stop")
                self.assertGreater(r.usage.prompt_tokens, 0)

                text, usage, finish = "", None, None
                for chunk in self.client.chat.completions.create(
                        model=chat_model, messages=messages, stream=True, stream_options={"include_usage": True}):
                    self.assertEqual(chunk.object, "chat.completion.chunk")
                    if chunk.choices:
                        text += chunk.choices[0].delta.content or ""
                        finish = chunk.choices[0].finish_reason or finish
                    if chunk.usage:
                        usage = chunk.usage
                self.assertTrue(text)
                self.assertEqual(finish, "stop")
                self.assertIsNotNone(usage)

                ask = [{"role": "user", "content": "Weather in Paris?"}]
                r = self.client.chat.completions.create(model=tool_model, messages=ask, tools=tools)
                call = r.choices[0].message.tool_calls[0]
                self.assertEqual(call.function.name, "get_weather")
                self.assertEqual(r.choices[0].finish_reason, "tool_calls")
                arguments = json.loads(call.function.arguments)
                # Streamed call deltas reassemble into exactly the non-streamed call.
                name, args = "", ""
                for chunk in self.client.chat.completions.create(
                        model=tool_model, messages=ask, tools=tools, stream=True):
                    for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                        name += tc.function.name or ""
                        args += tc.function.arguments or ""
                self.assertEqual(name, "get_weather")
                self.assertEqual(json.loads(args), arguments)
                # The tool's answer goes back as a tool message.
                follow = ask + [r.choices[0].message.model_dump(exclude_none=True),
                                {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
                r = self.client.chat.completions.create(model=chat_model, messages=follow, tools=tools)
                self.assertEqual(r.choices[0].message.content, "Hello from mock.")

                e = self.client.embeddings.create(model=embed_model, input=["a", "b"])
                self.assertEqual(len(e.data), 2)
                self.assertEqual([d.index for d in e.data], [0, 1])
                self.assertGreater(len(e.data[0].embedding), 0)

    def test_health(self):
        with urllib.request.urlopen(self.proc.base + "/api/ping", timeout=5) as r:
            self.assertEqual(json.load(r)["status"], "ok")


if __name__ == "__main__":
    result = unittest.main(verbosity=2, exit=False).result
    sys.exit(0 if result.wasSuccessful() else 1)
