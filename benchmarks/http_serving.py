"""HTTP serving side by side: sk-mnist serve, MLServer 1.7 and FastAPI + Keras.

Each server runs as its own process on 127.0.0.1 and answers the same v2
inference request (one digit, ``UINT8 [1, 784]``), which is checked first:

- ``sk-mnist serve model.onnx`` (onnxruntime behind Starlette on uvicorn),
  plain and with adaptive batching;
- MLServer 1.7 with ``mlserver-sklearn`` serving a scikit-learn
  ``MLPClassifier(512, 512)``, the tool a scikit-learn user would pick, in a
  virtual environment of its own (made on first use from the registry);
- the tutorial way: FastAPI with a pydantic request model, calling Keras's
  ``model.predict`` on the same network as sk-mnist's.

The load generator is ``wrk`` (closed loop: each connection sends its next
request when the answer arrives), at 1 and 16 connections, in interleaved
rounds (each round runs every server once at each concurrency). Writes
``results/http_serving.md``, ``.json`` and ``.rst`` (``-quick`` with
``--quick``). Every request goes to loopback only, for a fixed time.

    python benchmarks/http_serving.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import report as reporting
from measure import machine

MLSERVER = "1.7.1"
#: sk-mnist serve's rows: the batching options of each.
SK_MNIST_SERVERS = {
    "sk-mnist serve, unbatched": ["--max-batch-size", "1"],
    "sk-mnist serve, batching 64, 0 ms": [
        "--max-batch-size", "64", "--max-latency-ms", "0",
    ],
    "sk-mnist serve, batching 64, 2 ms": [
        "--max-batch-size", "64", "--max-latency-ms", "2",
    ],
}  # fmt: skip
CONCURRENCY = (1, 16)
INFER = "/v2/models/mnist/infer"

_FASTAPI_APP = textwrap.dedent(
    '''
    """The tutorial way: FastAPI, a pydantic request model, Keras's predict."""
    import keras
    import numpy as np
    from fastapi import FastAPI
    from pydantic import BaseModel


    class Tensor(BaseModel):
        name: str
        shape: list[int]
        datatype: str
        data: list[float]


    class InferenceRequest(BaseModel):
        inputs: list[Tensor]


    app = FastAPI()
    model = keras.saving.load_model("model.keras")


    @app.get("/v2/health/ready")
    def ready():
        return {"ready": True}


    @app.post("/v2/models/mnist/infer")
    def infer(request: InferenceRequest):
        tensor = request.inputs[0]
        x = np.asarray(tensor.data, dtype="float32").reshape(tensor.shape[0], 784)
        proba = model.predict(x / 255, verbose=0)
        return {
            "model_name": "mnist",
            "outputs": [
                {"name": "label", "shape": [len(x)], "datatype": "INT64",
                 "data": proba.argmax(axis=1).tolist()},
                {"name": "probabilities", "shape": list(proba.shape),
                 "datatype": "FP32", "data": proba.ravel().tolist()},
            ],
        }
    '''
)

_WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[{body}]]
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("http_serving.py needs wrk: apt-get install wrk")
    n_train, epochs, rounds, seconds = (
        (3_000, 1, 2, 2) if args.quick else (60_000, 3, 5, 10)
    )
    with tempfile.TemporaryDirectory(prefix="sk-mnist-bench-") as folder:
        folder = Path(folder)
        digit = _prepare(folder, n_train, epochs)
        body = json.dumps(
            {
                "inputs": [
                    {
                        "name": "X",
                        "shape": [1, 784],
                        "datatype": "UINT8",
                        "data": digit.ravel().tolist(),
                    }
                ]
            }
        )
        (folder / "post.lua").write_text(_WRK_SCRIPT.format(body=body))
        servers = _start_servers(folder)
        try:
            for name, server in servers.items():
                _check_answer(name, server, body)
            results = {name: {c: [] for c in CONCURRENCY} for name in servers}
            # How busy the machine was: the 1-minute load average before each
            # run and at the end (the servers' own load included).
            load = []
            for _ in range(rounds):
                for concurrency in CONCURRENCY:
                    for name, server in servers.items():
                        load.append(os.getloadavg()[0])
                        results[name][concurrency].append(
                            _wrk(
                                server["url"], folder / "post.lua", concurrency, seconds
                            )
                        )
            load.append(os.getloadavg()[0])
        finally:
            for server in servers.values():
                server["process"].terminate()
            for server in servers.values():
                server["process"].wait(timeout=60)
    report = {
        "quick": args.quick,
        "machine": machine(),
        "rounds": rounds,
        "seconds_per_run": seconds,
        "n_train": n_train,
        "load_average_1min": load,
        "results": {
            name: {str(c): runs for c, runs in by_c.items()}
            for name, by_c in results.items()
        },
        "summary": _summary(results),
    }
    stem = "http_serving-quick" if args.quick else "http_serving"
    reporting.write(stem, report, _markdown(report))
    (reporting.RESULTS / f"{stem}.rst").write_text(_rst(report))


def _prepare(folder, n_train, epochs):
    """Train and save the three models; return the digit every request sends."""
    import joblib
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline

    from sk_mnist import KerasMLPClassifier, MNISTFlattener, fetch_mnist
    from sk_mnist.onnx import to_onnx

    X, y = fetch_mnist(subset="train", return_X_y=True)
    X, y = X[:n_train], y[:n_train]
    X_test, _ = fetch_mnist(subset="test", return_X_y=True)
    pipe = make_pipeline(
        MNISTFlattener(), KerasMLPClassifier(epochs=epochs, random_state=0)
    ).fit(X.reshape(-1, 28, 28), y)
    to_onnx(pipe, folder / "model.onnx", images=True)
    pipe[-1].model_.save(folder / "model.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp = MLPClassifier((512, 512), max_iter=epochs, random_state=0).fit(
            X.astype(np.float32) / 255, y
        )
    # MLServer's scikit-learn runtime reads joblib files: the peer's own format.
    mlserver_model = folder / "mlserver" / "mnist"
    mlserver_model.mkdir(parents=True)
    joblib.dump(mlp, mlserver_model / "model.joblib")
    (mlserver_model / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "mnist",
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib"},
            }
        )
    )
    (folder / "app.py").write_text(_FASTAPI_APP)
    return X_test[0].astype(np.uint8)


def _start_servers(folder):
    python = sys.executable
    quiet = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    commands = {}
    port = _free_port()
    # Unbatched, opportunistic batching (a lone request runs at once, those
    # arriving meanwhile share the next call) and batching that waits 2 ms.
    for name, batching in SK_MNIST_SERVERS.items():
        port = _free_port()
        commands[name] = (
            [python, "-m", "sk_mnist", "serve", "model.onnx", "--port", str(port),
             "--log-level", "warning", *batching],
            port,
            {},
        )  # fmt: skip
    mlserver = _mlserver()
    port = _free_port()
    settings = {
        "http_port": port,
        "grpc_port": _free_port(),
        "metrics_port": _free_port(),
        "host": "127.0.0.1",
    }
    (folder / "mlserver" / "settings.json").write_text(json.dumps(settings))
    commands[f"MLServer {MLSERVER} (MLPClassifier)"] = (
        [str(mlserver), "start", "."],
        port,
        {"cwd": folder / "mlserver"},
    )
    port = _free_port()
    commands["FastAPI + Keras predict"] = (
        [python, "-m", "uvicorn", "app:app", "--port", str(port), "--log-level",
         "warning"],
        port,
        {},
    )  # fmt: skip
    servers = {}
    for name, (command, port, options) in commands.items():
        log = open(folder / f"{name.split()[0]}-{port}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            command,
            cwd=options.get("cwd", folder),
            env=quiet,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        servers[name] = {
            "process": process,
            "url": f"http://127.0.0.1:{port}",
            "log": log,
        }
    for name, server in servers.items():
        _wait_ready(name, server)
    return servers


def _mlserver():
    """MLServer in a virtual environment of its own, made once per machine."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    venv = cache / "sk-mnist-bench" / f"mlserver-{MLSERVER}"
    binary = venv / "bin" / "mlserver"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        # uvloop 0.22 (2025-10) removed what MLServer 1.7's inference workers
        # call at start (asyncio.get_event_loop outside a loop): the workers
        # die. 0.21 was current when MLServer 1.7.1 came out.
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "--quiet",
             f"mlserver=={MLSERVER}", f"mlserver-sklearn=={MLSERVER}",
             "uvloop<0.22"],
            check=True,
        )  # fmt: skip
    return binary


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(name, server, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server["process"].poll() is not None:
            raise RuntimeError(f"{name} exited with {server['process'].returncode}")
        try:
            with urllib.request.urlopen(f"{server['url']}/v2/health/ready", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{name} was not ready after {timeout} s")


def _check_answer(name, server, body):
    """The server answers the request with outputs (else its log is shown)."""
    request = urllib.request.Request(
        server["url"] + INFER, body.encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
    except OSError as exc:
        log = Path(server["log"].name).read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{name} did not answer ({exc}):\n{log}") from None
    if not answer.get("outputs"):
        raise RuntimeError(f"{name} answered without outputs: {answer}")


def _wrk(url, script, concurrency, seconds):
    done = subprocess.run(
        # A timeout well above the slowest peer's latencies (wrk's own 2 s
        # counts a slow answer as an error on a loaded machine).
        ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--timeout", "30s",
         "--latency", "-s", str(script), url + INFER],
        capture_output=True,
        text=True,
        check=True,
    )  # fmt: skip
    text = done.stdout
    if "Non-2xx" in text or "Socket errors" in text:
        raise RuntimeError(f"wrk saw errors from {url}:\n{text}")
    try:
        return {
            "requests_per_second": float(
                re.search(r"Requests/sec:\s+([\d.]+)", text)[1]
            ),
            "p50_ms": _ms(re.search(r"^\s+50%\s+(\S+)", text, re.M)[1]),
            "p99_ms": _ms(re.search(r"^\s+99%\s+(\S+)", text, re.M)[1]),
        }
    except (TypeError, AttributeError, KeyError):
        raise RuntimeError(f"unexpected wrk output:\n{text}") from None


def _ms(text):
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def _summary(results):
    """Medians over the rounds, and ratios against MLServer."""
    summary = {}
    for name, by_c in results.items():
        summary[name] = {
            str(c): {
                key: statistics.median(run[key] for run in runs)
                for key in ("requests_per_second", "p50_ms", "p99_ms")
            }
            for c, runs in by_c.items()
        }
    peer = next(name for name in summary if name.startswith("MLServer"))
    for name in summary:
        for c, row in summary[name].items():
            row["requests_vs_mlserver"] = (
                row["requests_per_second"] / summary[peer][c]["requests_per_second"]
            )
    return summary


def _rows(report):
    for name, by_c in report["summary"].items():
        for c, row in by_c.items():
            yield [
                name,
                c,
                f"{row['requests_per_second']:,.0f}",
                f"{row['p50_ms']:.2f}",
                f"{row['p99_ms']:.2f}",
                f"{row['requests_vs_mlserver']:.2f}x",
            ]


_HEADER = ["server", "clients", "requests/s", "p50 ms", "p99 ms", "vs MLServer"]


def _markdown(report):
    lines = [
        f"# HTTP serving ({'quick' if report['quick'] else 'full'})",
        "",
        reporting.machine_line(report["machine"]),
        "",
        f"wrk, closed loop, {report['rounds']} interleaved rounds of "
        f"{report['seconds_per_run']} s per server and concurrency; medians. "
        "One request: one digit, v2 JSON, UINT8 [1, 784].",
        "",
        _load_line(report),
        "",
        "| " + " | ".join(_HEADER) + " |",
        "|" + "---|" * len(_HEADER),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(report)]
    return "\n".join(lines) + "\n"


def _load_line(report):
    load = report.get("load_average_1min")
    if not load:
        return ""
    return (
        f"The machine's 1-minute load average during the run (on "
        f"{report['machine']['cores']} cores, the servers included, the machine "
        f"shared with other jobs): {min(load):.1f} to {max(load):.1f}, median "
        f"{statistics.median(load):.1f}."
    )


def _rst(report):
    lines = [
        f"Measured by ``benchmarks/http_serving.py`` on "
        f"{report['machine']['cores']} cores ({report['machine']['cpu']}): wrk, "
        f"closed loop, {report['rounds']} interleaved rounds of "
        f"{report['seconds_per_run']} s per server and concurrency, medians. "
        + _load_line(report),
        "",
        *reporting.rst_list_table(_HEADER, list(_rows(report))),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
