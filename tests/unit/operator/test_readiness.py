"""Pure reading of pods: a container that keeps failing is named, a starting one is not."""

from __future__ import annotations

from sageport.operator.reconcile.readiness import broken_container_message


def _pod(init: list[dict[str, object]], main: list[dict[str, object]]) -> dict[str, object]:
    return {"metadata": {"name": "p-1"}, "status": {"initContainerStatuses": init, "containerStatuses": main}}


def test_a_crash_looping_init_container_is_named_with_its_last_exit() -> None:
    fetch = {
        "name": "fetch-model",
        "state": {
            "waiting": {"reason": "CrashLoopBackOff", "message": "back-off 20s restarting failed container"}
        },
        "lastState": {"terminated": {"reason": "Error", "exitCode": 1}},
    }
    message = broken_container_message(
        _pod([fetch], [{"name": "model", "state": {"waiting": {"reason": "PodInitializing"}}}])
    )
    assert message == (
        "container fetch-model of pod p-1: CrashLoopBackOff (last exit: Error): back-off 20s restarting failed container"
    )


def test_starting_and_running_containers_are_not_broken() -> None:
    running = {"name": "model", "state": {"running": {}}}
    creating = {"name": "model", "state": {"waiting": {"reason": "ContainerCreating"}}}
    assert broken_container_message(_pod([], [running])) is None
    assert broken_container_message(_pod([], [creating])) is None
    pull = {"name": "model", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "not found"}}}
    assert (
        broken_container_message(_pod([], [pull]))
        == "container model of pod p-1: ImagePullBackOff: not found"
    )
