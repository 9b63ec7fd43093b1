#!/usr/bin/python3
"""The kubelet's side of the CRI for `cargo xtask vm`, run inside the guest.

It makes the calls a kubelet makes to bring a pod up, keep it across a containerd restart
and take it down, over containerd's real socket with a gRPC client generated from the CRI's
own api.proto (api_pb2, api_pb2_grpc). It judges nothing: every response, or the gRPC
status of a failed call, goes into a JSON record that the xtask judges after the guest has
powered off. A call whose result later calls need (RunPodSandbox, CreateContainer,
StartContainer, ContainerStatus) ends the phase when it fails; the others do not.

Usage: cri.py PHASE STATE RECORD [--sandbox-image REF] [--image REF]
  up             Version, Status, RuntimeConfig, ImageStatus of both images (what is
                 there before), RunPodSandbox (which pulls the sandbox image if it is not),
                 PodSandboxStatus, ImageStatus of the sandbox image, PullImage of the
                 container's image and its ImageStatus, CreateContainer, StartContainer,
                 ContainerStatus, ExecSync; writes the pod's ids and the container's pid
                 to STATE
  after-upgrade  Version, Status, ContainerStatus and ExecSync for the pod in STATE
  down           StopPodSandbox and RemovePodSandbox of the pod in STATE, then
                 ListPodSandbox and ListContainers
"""

import argparse
import json
import os
import subprocess
import sys
import time
import uuid

import grpc
from google.protobuf import json_format

sys.path.insert(0, "/usr/local/lib/containerd-stack-vm")
import api_pb2  # noqa: E402  (generated at image build time, next to api_pb2_grpc)
import api_pb2_grpc  # noqa: E402

SOCKET = "unix:///run/containerd/containerd.sock"
# The gateway of the bridge the package's CNI config sets up (10.88.0.0/16).
GATEWAY = "10.88.0.1"
# How long one call may take. Software emulation on a busy machine is slow: these are
# limits for a hung call, not expected durations.
DEADLINE = 300
# How long containerd may take to serve the CRI after it started.
READY_WITHIN = 300


class Recorder:
    """The phase's record, rewritten whole after every step so that a guest that dies
    midway still leaves what it did."""

    def __init__(self, path, phase):
        self.path = path
        self.record = {"phase": phase, "steps": []}

    def add(self, step):
        self.record["steps"].append(step)
        partial = self.path + ".partial"
        with open(partial, "w", encoding="utf-8") as f:
            json.dump(self.record, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.rename(partial, self.path)

    def call(self, name, method, request, timeout=DEADLINE):
        """Makes one call; records its response, or its gRPC status; returns the response
        or None."""
        start = time.monotonic()
        step = {"step": name, "kind": "call"}
        try:
            response = method(request, timeout=timeout)
        except grpc.RpcError as e:
            step.update(ok=False, code=e.code().name, details=e.details())
            response = None
        else:
            step.update(ok=True, response=as_dict(response))
        step["seconds"] = round(time.monotonic() - start, 2)
        self.add(step)
        say(f"{name}: {'ok' if response is not None else step['code']} ({step['seconds']}s)")
        return response

    def fact(self, name, value):
        self.add({"step": name, "kind": "fact", "value": value})


def as_dict(message):
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, including_default_value_fields=True
    )


def say(text):
    # The console is the serial line the host reads; the record is what it judges.
    try:
        with open("/dev/console", "w", encoding="utf-8") as console:
            console.write(f"vm:   cri {text}\n")
    except OSError:
        pass


def wait_until_served(rec, runtime):
    """Waits until containerd answers the CRI: its socket exists and the CRI service is
    initialised (1.x answers "server is not initialized yet" until then). Any other answer
    ends the wait; the calls after it record what it was."""
    start = time.monotonic()
    attempts = 0
    last = None
    while True:
        attempts += 1
        try:
            runtime.Version(api_pb2.VersionRequest(), timeout=30)
            last = None
            break
        except grpc.RpcError as e:
            last = f"{e.code().name}: {e.details()}"
            retry = e.code() == grpc.StatusCode.UNAVAILABLE or "not initialized" in (
                e.details() or ""
            )
            if not retry or time.monotonic() - start > READY_WITHIN:
                break
        time.sleep(1)
    rec.fact(
        "served",
        {
            "seconds": round(time.monotonic() - start, 2),
            "attempts": attempts,
            "last_error": last,
        },
    )


def read(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        return f"cannot read {path}: {e}"


def run(args):
    out = subprocess.run(args, capture_output=True, text=True, check=False)
    return {"args": args, "status": out.returncode, "stdout": out.stdout, "stderr": out.stderr}


def exec_ping(rec, runtime, container_id, name):
    response = rec.call(
        name,
        runtime.ExecSync,
        api_pb2.ExecSyncRequest(
            container_id=container_id, cmd=["ping", "-c", "1", "-W", "10", GATEWAY], timeout=120
        ),
    )
    if response is not None:
        # The record's copy of the output is base64 (bytes fields): add it as text.
        rec.fact(
            name + " output",
            {
                "exit_code": response.exit_code,
                "stdout": response.stdout.decode("utf-8", "replace"),
                "stderr": response.stderr.decode("utf-8", "replace"),
            },
        )


def container_pid(rec, runtime, container_id, name):
    """ContainerStatus, verbose: the pid of the container's process, from its info."""
    response = rec.call(
        name,
        runtime.ContainerStatus,
        api_pb2.ContainerStatusRequest(container_id=container_id, verbose=True),
    )
    if response is None:
        return None
    try:
        pid = int(json.loads(response.info["info"])["pid"])
    except (KeyError, ValueError, TypeError) as e:
        rec.fact(name + " pid", {"error": f"no pid in the verbose info: {e!r}"})
        return None
    rec.fact(name + " pid", {"pid": pid})
    return pid


def cgroup_facts(rec, pid, container_id, name):
    """Where the container's process sits, as the kernel and systemd see it."""
    rec.fact(
        name,
        {
            "proc_cgroup": read(f"/proc/{pid}/cgroup"),
            "systemd": run(
                [
                    "systemctl",
                    "show",
                    "--property=Id,ActiveState,ControlGroup",
                    f"cri-containerd-{container_id}.scope",
                ]
            ),
        },
    )


def image_status(rec, images, step, ref):
    rec.call(
        step, images.ImageStatus, api_pb2.ImageStatusRequest(image=api_pb2.ImageSpec(image=ref))
    )


def pod_config(uid):
    """The pod as the kubelet describes a BestEffort pod with the systemd cgroup driver:
    its cgroup parent is the pod's slice, named after its UID with - escaped as _."""
    name = "cs-vm-pod"
    return api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, uid=uid, namespace="default", attempt=0),
        hostname=name,
        log_directory=f"/var/log/pods/default_{name}_{uid}",
        linux=api_pb2.LinuxPodSandboxConfig(
            cgroup_parent=f"kubepods-besteffort-pod{uid.replace('-', '_')}.slice",
            security_context=api_pb2.LinuxSandboxSecurityContext(
                namespace_options=api_pb2.NamespaceOption(
                    network=api_pb2.POD, pid=api_pb2.CONTAINER, ipc=api_pb2.POD
                )
            ),
        ),
    )


def up(rec, runtime, images, state_path, sandbox_image, image):
    wait_until_served(rec, runtime)
    rec.call("Version", runtime.Version, api_pb2.VersionRequest())
    rec.call("Status", runtime.Status, api_pb2.StatusRequest())
    rec.call("RuntimeConfig", runtime.RuntimeConfig, api_pb2.RuntimeConfigRequest())
    # What containerd has before the pod: a fresh node has neither image, and only a pull
    # through the registry mirrors can bring them.
    for step, ref in (
        ("ImageStatus sandbox before", sandbox_image),
        ("ImageStatus image before", image),
    ):
        image_status(rec, images, step, ref)

    uid = str(uuid.uuid4())
    config = pod_config(uid)
    rec.fact("pod", {"uid": uid, "cgroup_parent": config.linux.cgroup_parent})
    sandbox = rec.call(
        "RunPodSandbox", runtime.RunPodSandbox, api_pb2.RunPodSandboxRequest(config=config)
    )
    if sandbox is None:
        return
    pod_id = sandbox.pod_sandbox_id
    state = {"pod_id": pod_id, "uid": uid}
    save(state_path, state)
    rec.call(
        "PodSandboxStatus",
        runtime.PodSandboxStatus,
        api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod_id),
    )
    # The image the sandbox's container really runs: containerd's own record of it.
    rec.fact(
        "sandbox container", run(["ctr", "--namespace", "k8s.io", "containers", "info", pod_id])
    )
    image_status(rec, images, "ImageStatus sandbox", sandbox_image)

    # The kubelet pulls a container's image after the pod is up, with the pod's config.
    if rec.call(
        "PullImage",
        images.PullImage,
        api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=image), sandbox_config=config),
    ) is None:
        return
    image_status(rec, images, "ImageStatus image", image)

    created = rec.call(
        "CreateContainer",
        runtime.CreateContainer,
        api_pb2.CreateContainerRequest(
            pod_sandbox_id=pod_id,
            config=api_pb2.ContainerConfig(
                metadata=api_pb2.ContainerMetadata(name="busybox", attempt=0),
                image=api_pb2.ImageSpec(image=image),
                command=["sleep", "2147483647"],
                log_path="busybox/0.log",
                linux=api_pb2.LinuxContainerConfig(
                    security_context=api_pb2.LinuxContainerSecurityContext(
                        namespace_options=config.linux.security_context.namespace_options
                    )
                ),
            ),
            sandbox_config=config,
        ),
    )
    if created is None:
        return
    container_id = created.container_id
    state["container_id"] = container_id
    save(state_path, state)
    if rec.call(
        "StartContainer",
        runtime.StartContainer,
        api_pb2.StartContainerRequest(container_id=container_id),
    ) is None:
        return
    pid = container_pid(rec, runtime, container_id, "ContainerStatus")
    if pid is None:
        return
    state["pid"] = pid
    save(state_path, state)
    exec_ping(rec, runtime, container_id, "ExecSync")
    cgroup_facts(rec, pid, container_id, "cgroup")


def after_upgrade(rec, runtime, state):
    if "container_id" not in state:
        rec.fact("skipped", "the up phase left no container")
        return
    wait_until_served(rec, runtime)
    rec.call("Version", runtime.Version, api_pb2.VersionRequest())
    rec.call("Status", runtime.Status, api_pb2.StatusRequest())
    pid = container_pid(rec, runtime, state["container_id"], "ContainerStatus")
    exec_ping(rec, runtime, state["container_id"], "ExecSync")
    if pid is not None:
        cgroup_facts(rec, pid, state["container_id"], "cgroup")


def down(rec, runtime, state):
    if "pod_id" not in state:
        rec.fact("skipped", "the up phase left no pod")
        return
    wait_until_served(rec, runtime)
    pod_id = state["pod_id"]
    rec.call(
        "StopPodSandbox",
        runtime.StopPodSandbox,
        api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id),
    )
    rec.call(
        "RemovePodSandbox",
        runtime.RemovePodSandbox,
        api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id),
    )
    rec.call("ListPodSandbox", runtime.ListPodSandbox, api_pb2.ListPodSandboxRequest())
    rec.call("ListContainers", runtime.ListContainers, api_pb2.ListContainersRequest())


def save(path, state):
    with open(path + ".partial", "w", encoding="utf-8") as f:
        json.dump(state, f, sort_keys=True)
    os.rename(path + ".partial", path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phase", choices=["up", "after-upgrade", "down"])
    parser.add_argument("state")
    parser.add_argument("record")
    parser.add_argument("--sandbox-image")
    parser.add_argument("--image")
    args = parser.parse_args()

    rec = Recorder(args.record, args.phase)
    channel = grpc.insecure_channel(SOCKET)
    runtime = api_pb2_grpc.RuntimeServiceStub(channel)
    images = api_pb2_grpc.ImageServiceStub(channel)
    if args.phase == "up":
        if not args.sandbox_image or not args.image:
            parser.error("up needs --sandbox-image and --image")
        up(rec, runtime, images, args.state, args.sandbox_image, args.image)
    else:
        state = {}
        if os.path.exists(args.state):
            with open(args.state, encoding="utf-8") as f:
                state = json.load(f)
        if args.phase == "after-upgrade":
            after_upgrade(rec, runtime, state)
        else:
            down(rec, runtime, state)
    rec.fact("done", True)


if __name__ == "__main__":
    main()
