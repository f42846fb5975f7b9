from yingxi.director.camera import CameraPath, camera_path, camera_phrase
from yingxi.director.capabilities import Capabilities
from yingxi.director.plan import Keyframe, ShotPlan, plan, shot_seed

__all__ = [
    "CameraPath",
    "Capabilities",
    "Keyframe",
    "ShotPlan",
    "camera_path",
    "camera_phrase",
    "plan",
    "shot_seed",
]
