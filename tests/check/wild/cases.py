"""Normalization recipes from public code, reproduced on real data, each with the verdict it deserves.

Every case is the snippet's arithmetic (not its code) applied to real data, and returns the arguments a
user would pass to ``normlab.check`` with what they have. ``MISTAKES`` name the codes that catch them (at
warning or error); ``CORRECT`` recipes must produce no warning and no error. ``source`` is the repository
and path, or the issue/pull request, where the snippet was found.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from tests.check.helpers import CAFFE_BGR, IMAGENET_MEAN, IMAGENET_STD

from normlab.check import InputStep, ModelInput


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # "mistake" or "correct"
    source: str
    what: str
    build: Callable[[Any], dict[str, Any]]
    expect: tuple[str, ...] = ()  # codes that catch a mistake


CASES: list[Case] = []


def case(kind: str, source: str, what: str, expect: tuple[str, ...] = ()) -> Callable:
    def register(fn: Callable[[Any], dict[str, Any]]) -> Callable[[Any], dict[str, Any]]:
        CASES.append(Case(fn.__name__, kind, source, what, fn, expect))
        return fn

    return register


def _rescaling(scale: float = 1 / 255, offset: float = 0.0) -> ModelInput:
    return ModelInput("model.keras", (InputStep("rescaling", "Rescaling", np.array(scale), np.array(offset)),),
                      first_layer="conv2d")


def _both(x: np.ndarray, t: np.ndarray, f: Callable[[np.ndarray], np.ndarray]) -> dict[str, Any]:
    """The raw train and test splits with ``f`` (one normalization, fitted once) applied to each."""
    return {"train": x, "normalized": f(x), "test": t, "test_normalized": f(t)}


def _pooled(x: np.ndarray, t: np.ndarray) -> dict[str, Any]:
    """Standardized with the mean and std of train and test together (fit before the split)."""
    both = np.concatenate([x, t])
    m, s = both.mean(0), both.std(0)
    return _both(x, t, lambda a: (a - m) / s)


def _keras_normalize(x: np.ndarray, axis: int) -> np.ndarray:
    norm = np.atleast_1d(np.linalg.norm(x, 2, axis))
    norm[norm == 0] = 1
    return x / np.expand_dims(norm, axis)


# ---- mistakes ----------------------------------------------------------------------------------------


@case("mistake", "jasonyang295/MNIST-Digit-Recognization: recognition.py",
      "tf.keras.utils.normalize(x_train, axis=1) on (n, 28, 28) MNIST", ("wrong-axis",))
def keras_normalize_axis1_mnist(d):
    return {"train": d.mnist[..., 0], "normalized": _keras_normalize(d.mnist[..., 0].astype(np.float64), 1)}


@case("mistake", "prak0109/Deep-Learning: Tensorflow_basic.py",
      "tf.keras.utils.normalize(x, axis=1) on train and test, MNIST", ("wrong-axis",))
def keras_normalize_axis1_mnist_test(d):
    return _both(d.mnist[..., 0], d.mnist_test[..., 0], lambda x: _keras_normalize(x.astype(np.float64), 1))


@case("mistake", "peustr/A2SNN: utils.py",
      "CIFAR-10 std (0.2023, 0.1994, 0.2010), an average of per-image stds", ("averaged-std",))
def cifar_averaged_std_constant(d):
    return {"train": d.cifar, "stats": {"mean": [0.4914, 0.4822, 0.4465], "std": [0.2023, 0.1994, 0.2010]}}


@case("mistake", "https://github.com/ngeorgis/pytorch_onnx_openvino/issues/1",
      "ToTensor + Normalize with the averaged CIFAR-10 std, data normalized", ("averaged-std",))
def cifar_averaged_std_normalized(d):
    z = (d.cifar / 255.0 - [0.4914, 0.4822, 0.4465]) / [0.2023, 0.1994, 0.2010]
    return {"train": d.cifar, "normalized": z.astype(np.float32)}


@case("mistake", "pranoyr/large-scale-visual-relationship-understanding: mean.py",
      "std += data.std(2).sum(0) over a DataLoader: the average of per-image stds", ("averaged-std",))
def per_image_std_loop(d):
    x01 = d.cifar / 255.0
    mean = x01.reshape(len(x01), -1, 3).mean(axis=1).mean(axis=0)
    std = x01.reshape(len(x01), -1, 3).std(axis=1, ddof=1).mean(axis=0)
    return {"train": d.cifar, "stats": {"mean": mean.tolist(), "std": std.tolist()}}


@case("mistake", "Fashion class with Compose([ToTensor(), Normalize((0.1307,), (0.3081,))]) on FashionMNIST "
      "(code search; also https://github.com/pytorch/examples mnist/main.py constants)",
      "MNIST's constants on Fashion-MNIST", ("stats-from-other-data",))
def mnist_constants_on_fashion(d):
    z = ((d.fashion / 255.0 - 0.1307) / 0.3081).astype(np.float32)
    return {"train": d.fashion, "normalized": z}


@case("mistake", "https://github.com/XiaLiPKU/EMANet/issues/7",
      "image = (image - MEAN) / MEAN: divided by the mean instead of the std", ("stats-from-other-data",))
def divided_by_the_mean(d):
    return {"train": d.cifar, "stats": {"mean": IMAGENET_MEAN.tolist(), "std": IMAGENET_MEAN.tolist()}}


@case("mistake", "https://github.com/4uiiurz1/pytorch-nested-unet/issues/62",
      "img / 255 then albumentations Normalize(max_pixel_value=255)", ("stats-outside-data",))
def albumentations_after_div255(d):
    x01 = d.cifar / 255.0
    return {"train": x01, "normalized": (x01 - IMAGENET_MEAN * 255) / (IMAGENET_STD * 255)}


@case("mistake", "https://github.com/keras-team/keras/issues/9313",
      "ImageDataGenerator: featurewise mean/std computed before rescale=1/255, applied after it",
      ("stats-outside-data",))
def featurewise_stats_before_rescale(d):
    x = d.mnist.astype(np.float64)
    return {"train": x / 255.0, "stats": {"mean": [float(x.mean())], "std": [float(x.std())]}}


@case("mistake", "https://github.com/Priyanshu-byte-coder/devtrack/issues/927",
      "x / 255 before a model that starts with Rescaling(1./255)", ("double-scaling",))
def div255_into_rescaling_model(d):
    return {"train": d.mnist, "normalized": d.mnist / 255.0, "model": _rescaling()}


@case("mistake", "https://github.com/SarahwXU/HiSup/issues/35",
      "skimage resize (already [0, 1]) followed by / 255", ("double-scaling",))
def resize_then_div255(d):
    return {"train": d.cifar / 255.0, "normalized": d.cifar / 255.0 / 255.0}


@case("mistake", "https://github.com/lmoroney/dlaicourse/issues/129",
      "trained on rescale=1/255, predicting on unscaled uploads", ("train-test-mismatch",))
def inference_without_rescale(d):
    return {"train": d.cifar_train, "normalized": d.cifar_train / 255.0, "test": d.cifar_test,
            "test_normalized": d.cifar_test.astype(np.float64)}


@case("mistake", "arcAman07/ModelsFromScratch: U-Net/dataset.py",
      "train with Normalize((0.5,), (0.5,)), test with ToTensor() only (Fashion-MNIST)", ("train-test-mismatch",))
def test_set_not_normalized(d):
    return {"train": d.fashion, "normalized": (d.fashion / 255.0 - 0.5) / 0.5, "test": d.fashion_test,
            "test_normalized": d.fashion_test / 255.0}


@case("mistake", "AmirGh2611/OS_project: data_prep.py",
      "x_test = (x_test - x_test.mean()) / x_test.std(): the test set with its own statistics",
      ("train-test-mismatch", "stats-from-test-split"))
def test_with_its_own_stats_mnist(d):
    x, t = d.mnist.astype(np.float32), d.mnist_test.astype(np.float32)
    return {"train": d.mnist, "normalized": (x - x.mean()) / x.std(), "test": d.mnist_test,
            "test_normalized": (t - t.mean()) / t.std()}


@case("mistake", "https://github.com/khuyentran1401/production-ready-data-science-code/pull/5",
      "standardize_features(X_test) with X_test's own mean and std (wine)",
      ("train-test-mismatch", "stats-from-test-split"))
def test_with_its_own_stats_table(d):
    x, t = d.wine
    return {"train": x, "normalized": (x - x.mean(0)) / x.std(0), "test": t, "test_normalized": (t - t.mean(0)) / t.std(0)}


@case("mistake", "https://github.com/scikit-learn/scikit-learn/pull/5800",
      "RobustScaler fit_transform on the test set (breast cancer)", ("train-test-mismatch", "stats-from-test-split"))
def robust_scaler_refit_on_test(d):
    x, t = d.cancer
    med = lambda a: np.median(a, 0)  # noqa: E731
    iqr = lambda a: np.percentile(a, 75, 0) - np.percentile(a, 25, 0)  # noqa: E731
    return {"train": x, "normalized": (x - med(x)) / iqr(x), "test": t, "test_normalized": (t - med(t)) / iqr(t)}


@case("mistake", "https://github.com/scikit-learn/scikit-learn/issues/24695",
      "X = StandardScaler().fit_transform(X) before train_test_split (breast cancer)", ("stats-from-test-split",))
def scaler_before_split_cancer(d):
    return _pooled(*d.cancer)


@case("mistake", "animshamura/You-Know-DL: ann.py",
      "StandardScaler().fit_transform(X) on all samples, then split (breast cancer)", ("stats-from-test-split",))
def scaler_before_split_ann(d):
    x, t = d.cancer
    both = np.concatenate([x, t])
    return {"train": x, "test": t, "stats": {"mean": both.mean(0).tolist(), "std": both.std(0).tolist()}}


@case("mistake", "https://github.com/nijamudheen/CheMLFlow/issues/9",
      "scaling before the data split (wine)", ("stats-from-test-split",))
def scaler_before_split_wine(d):
    return _pooled(*d.wine)


@case("correct", "HOGEUNGOD/scientificProject: main.py",
      "X_train.std(axis=0) + 1e-7 per pixel on Fashion-MNIST: every pixel varies, so the epsilon changes nothing")
def std_plus_epsilon_fashion(d):
    x = d.fashion[..., 0].astype(np.float64)
    m, s = x.mean(0), x.std(0) + 1e-7
    return _both(d.fashion[..., 0], d.fashion_test[..., 0], lambda a: (a - m) / s)


@case("mistake", "per_pixel_normalization: images /= (per_pixel_std + 1e-14) (code search, Fashion-MNIST setup)",
      "per-pixel std + 1e-14 on MNIST, applied to the test set", ("test-values-explode",))
def std_plus_tiny_epsilon_mnist(d):
    x = d.mnist.astype(np.float32)
    m, s = x.mean(0), x.std(0)
    return _both(d.mnist, d.mnist_test, lambda a: (a.astype(np.float32) - m) / (s + 1e-14))


@case("mistake", "Standardization layer: tf_keras.layers.Normalization(mean=mean, variance=stddev) (code search)",
      "Keras Normalization given the std as its variance (MNIST)", ("std-as-variance",))
def keras_normalization_variance_is_std(d):
    x01 = d.mnist / 255.0
    return {"train": d.mnist, "stats": {"mean": [float(x01.mean())], "var": [float(x01.std())]}}


@case("mistake", "cyrilvincent/ML: DL09-02-simple-keras.py",
      "raw breast-cancer features into keras Dense layers", ("features-not-scaled", "scale-disparity"))
def raw_table_into_dense(d):
    return {"train": d.cancer[0]}


@case("mistake", "https://github.com/lmoroney/dlaicourse/issues/129",
      "raw 0..255 pixels fed to a network (no rescale at all)", ("pixels-not-scaled",))
def raw_pixels(d):
    return {"train": d.cifar, "normalized": d.cifar.astype(np.float32)}


@case("mistake", "witersong/machinelearning: Scikit/pandas/shampoo.py",
      "preprocessing.Normalizer() (unit L2 rows) on a table of mixed units (wine)", ("wrong-axis",))
def sklearn_normalizer_rows(d):
    x = d.wine[0]
    return {"train": x, "normalized": x / np.linalg.norm(x, axis=1, keepdims=True)}


@case("mistake", "caoruicn1/MLaPP: pmtk3/stats/normalize.py",
      "normalize(X, axis=1): each row sums to one (L1) on a table of mixed units (breast cancer)", ("wrong-axis",))
def l1_rows_table(d):
    x = d.cancer[0]
    return {"train": x, "normalized": x / x.sum(axis=1, keepdims=True)}


@case("mistake", "https://github.com/ageron/handson-ml/issues/80",
      "images / 255 for inception_v3, which was trained on [-1, 1]", ("expects-mismatch",))
def inception_fed_unit(d):
    return {"train": d.cifar, "normalized": d.cifar / 255.0, "expects": "minus-one-one"}


@case("mistake", "https://github.com/UofT-DSI/deep_learning/issues/89",
      "ResNet50 preprocess_input (caffe) on [0, 1] images from skimage resize", ("expects-mismatch",))
def caffe_on_unit_data(d):
    return {"train": d.cifar / 255.0, "normalized": (d.cifar / 255.0)[..., ::-1] - CAFFE_BGR, "expects": "caffe"}


@case("mistake", "https://github.com/princeton-vl/DPVO/issues/17",
      "2 * (image / 255) - 0.5 where [-1, 1] was intended", ("expects-mismatch",))
def minus_half_to_one_and_half(d):
    return {"train": d.cifar, "normalized": 2 * (d.cifar / 255.0) - 0.5, "expects": "minus-one-one"}


@case("mistake", "https://github.com/tensorflow/tensorflow/issues/44983",
      "tf.image.per_image_standardization on uint8 returns uint8, saturated at 0", ("uint8-wraparound",))
def per_image_standardization_uint8(d):
    x = d.cifar.astype(np.float64)
    z = (x - x.mean(axis=(1, 2, 3), keepdims=True)) / x.std(axis=(1, 2, 3), keepdims=True)
    return {"train": d.cifar, "normalized": np.clip(z, 0, 255).astype(np.uint8)}


@case("mistake", "https://github.com/waveform80/picamera/pull/263",
      "mean subtracted in uint8, before the cast to float (wraps around)", ("uint8-wraparound",))
def uint8_mean_subtraction(d):
    return {"train": d.mnist, "normalized": d.mnist - np.uint8(33)}


# ---- correct recipes ---------------------------------------------------------------------------------


@case("correct", "tanganke/pytorch_classification: pytorch_classification/transforms/mnist.py",
      "ToTensor + Normalize((0.1307,), (0.3081,)) on MNIST")
def mnist_constants(d):
    return _both(d.mnist, d.mnist_test, lambda x: ((x / 255.0 - 0.1307) / 0.3081).astype(np.float32))


@case("correct", "amanyagami/DrDnaResnet18: data/data.py", "CIFAR-10 pooled std (0.2471, 0.2435, 0.2616)")
def cifar_pooled_std(d):
    return {"train": d.cifar, "stats": {"mean": [0.4914, 0.4822, 0.4465], "std": [0.2471, 0.2435, 0.2616]}}


@case("correct", "pypi-data/pypi-mirror-56: qbz95/tf/code_test.py", "Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)) on CIFAR-10")
def cifar_half_half(d):
    return {"train": d.cifar, "normalized": ((d.cifar / 255.0 - 0.5) / 0.5).astype(np.float32)}


@case("correct", "FriChaFri/CNN_MNIST: src/data.py", "Normalize((0.5,), (0.5,)) on MNIST, train and test")
def mnist_half_half(d):
    return _both(d.mnist, d.mnist_test, lambda x: (x / 255.0 - 0.5) / 0.5)


@case("correct", "DrChrisLevy/fast-ai-course-sd: notebooks/fashion_mnist.md",
      "((x / 255) - 0.28) / 0.35 on Fashion-MNIST")
def fashion_own_constants(d):
    return {"train": d.fashion, "normalized": ((d.fashion / 255.0) - 0.28) / 0.35}


@case("correct", "KirthickNJ/Deep-Learning-: ex8/addon.md", "(x - 127.5) / 127.5 on Fashion-MNIST (a GAN's [-1, 1])")
def fashion_minus_one_one(d):
    return {"train": d.fashion, "normalized": (d.fashion.astype(np.float32) - 127.5) / 127.5}


@case("correct", "JeffreyQin/Keras_Notes: CNN_MNIST/prepData.py", "(images / 255) - 0.5 on MNIST, train and test")
def mnist_centred_unit(d):
    return _both(d.mnist, d.mnist_test, lambda x: x / 255.0 - 0.5)


@case("correct", "DavidBert/TP_MAPI3_FULL: solutions/digits_preprocessing.py",
      "StandardScaler fit on the training split of digits, transform on both")
def digits_standard_scaler(d):
    x, t = d.digits
    m, s = x.mean(0), x.std(0)
    s = np.where(s > 0, s, 1.0)  # scikit-learn's scale_ of constant columns
    return _both(x, t, lambda a: (a - m) / s)


@case("correct", "sofaque/ml_course: 2_data_governance/scaling.py",
      "StandardScaler fit on X_train, transform on X_test (breast cancer)")
def cancer_standard_scaler(d):
    x, t = d.cancer
    m, s = x.mean(0), x.std(0)
    return {**_both(x, t, lambda a: (a - m) / s), "stats": {"mean": m.tolist(), "std": s.tolist()}}


@case("correct", "bigcenter91/Stduy_: keras/Prac/scaler_prac.py",
      "scaler.fit(X_train) on flattened MNIST: constant pixels divided by 1")
def flattened_mnist_standard_scaler(d):
    x, t = d.mnist.reshape(len(d.mnist), -1), d.mnist_test.reshape(len(d.mnist_test), -1)
    m, s = x.mean(0), x.std(0)
    return _both(x, t, lambda a: (a - m) / np.where(s > 0, s, 1.0))


@case("correct", "witersong/machinelearning: Scikit/pandas/shampoo.py",
      "MinMaxScaler fit_transform(X_train), transform(X_test) (wine)")
def wine_minmax(d):
    x, t = d.wine
    lo, hi = x.min(0), x.max(0)
    return _both(x, t, lambda a: (a - lo) / (hi - lo))


@case("correct", "https://github.com/thuml/Time-Series-Library/issues/452",
      "scaler fit on the training rows only, applied to all (breast cancer)")
def cancer_fit_on_train_rows(d):
    x, t = d.cancer
    m, s = x.mean(0), x.std(0)
    return {"train": x, "test": t, "stats": {"mean": m.tolist(), "std": s.tolist()}}


@case("correct", "https://github.com/pytorch/vision/pull/179",
      "ImageNet mean and std for an ImageNet-pretrained backbone (CIFAR-10 images)")
def imagenet_pretrained(d):
    z = (d.cifar / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return {"train": d.cifar, "normalized": z.astype(np.float32), "expects": "imagenet"}


@case("correct", "https://github.com/Arsey/keras-transfer-learning-for-oxford102/issues/1",
      "keras.applications preprocess_input (Caffe: BGR minus ImageNet's mean) for VGG16")
def caffe_for_vgg(d):
    return {"train": d.cifar, "normalized": d.cifar[..., ::-1].astype(np.float32) - CAFFE_BGR}


@case("correct", "https://github.com/oarriaga/face_classification/issues/114",
      "x / 255 - 0.5, * 2.0: [-1, 1] for a model trained on it", ())
def minus_one_one_for_xception(d):
    return {"train": d.cifar, "normalized": (d.cifar / 255.0 - 0.5) * 2.0, "expects": "minus-one-one"}


@case("correct", "mmkarandikar/neural_network: examples/MNIST/preprocessing.py",
      "per-image standardization (each image to mean 0, std 1) of MNIST")
def per_image_standardization(d):
    x = d.mnist.astype(np.float64)
    return {"train": d.mnist, "normalized": (x - x.mean(axis=(1, 2), keepdims=True)) / x.std(axis=(1, 2), keepdims=True)}


@case("correct", "https://github.com/Priyanshu-byte-coder/devtrack/issues/927",
      "raw uint8 pixels into a model whose first layer is Rescaling(1./255) (the fix)")
def raw_pixels_into_rescaling_model(d):
    return {"train": d.mnist, "test": d.mnist_test, "model": _rescaling(), "expects": "unit"}


@case("correct", "happyhappy-jun/CSED538-final-project: preprocessing/mean_std.py",
      "two-pass pooled mean and std over a DataLoader (CIFAR-10 images)")
def two_pass_pooled_std(d):
    x01 = d.cifar / 255.0
    mean = x01.mean(axis=(0, 1, 2))
    std = np.sqrt(((x01 - mean) ** 2).sum(axis=(0, 1, 2)) / (x01.size / 3))
    return {"train": d.cifar, "stats": {"mean": mean.tolist(), "std": std.tolist()}}


@case("correct", "cyrilvincent/DL: DL09-20-tp-cancer-final.py",
      "StandardScaler on the breast-cancer features before a keras MLP (no held-out split)")
def cancer_scaled_for_mlp(d):
    x = np.concatenate(d.cancer)
    return {"train": x, "normalized": (x - x.mean(0)) / x.std(0)}


# ---- added after the checks were written, and run once without changing any check -----------------------

#: The first case found and reproduced after the checks were finished; it and those after it were not used
#: to tune any check.
LATE_FROM = "validation_data_not_rescaled"


@case("mistake", "https://github.com/keras-team/keras/issues/7187",
      "ImageDataGenerator(rescale=1/255) for training, validation_data passed unscaled", ("train-test-mismatch",))
def validation_data_not_rescaled(d):
    return {"train": d.mnist, "normalized": d.mnist / 255.0, "test": d.mnist_test,
            "test_normalized": d.mnist_test.astype(np.float32)}


@case("mistake", "https://github.com/jolibrain/deepdetect/pull/432",
      "mean subtracted before the image is stored as 8-bit data (negative values wrap)", ("uint8-wraparound",))
def mean_subtracted_then_stored_uint8(d):
    z = (d.cifar.astype(np.int16) - np.array([104, 117, 124], dtype=np.int16)).astype(np.uint8)
    return {"train": d.cifar, "normalized": z}


@case("correct", "divraz/EVA6: Experiment_7/get_mean_and_std.py",
      "mean of batch means and of batch mean squares over equal batches: the pooled statistics (CIFAR-10)")
def batch_moments_pooled(d):
    x01 = (d.cifar / 255.0).reshape(10, -1, 32 * 32, 3)  # 10 batches of 100 images
    mean = x01.mean(axis=(1, 2)).mean(axis=0)
    std = np.sqrt((x01**2).mean(axis=(1, 2)).mean(axis=0) - mean**2)
    return {"train": d.cifar, "stats": {"mean": mean.tolist(), "std": std.tolist()}}


@case("correct", "https://github.com/Cadene/pretrained-models.pytorch/issues/188",
      "Xception's pretrained config mean (0.5, 0.5, 0.5), std (0.5, 0.5, 0.5) on ToTensor output")
def xception_config(d):
    cfg = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}
    return {"train": d.cifar, "normalized": (d.cifar / 255.0 - 0.5) / 0.5, "expects": cfg}


@case("correct", "https://github.com/chainer/chainercv/issues/358",
      "Faster R-CNN preprocessing: the mean subtracted, no / 255 (what its Caffe weights expect)")
def mean_subtraction_only(d):
    return {"train": d.cifar, "normalized": d.cifar.astype(np.float32) - np.array([122.8, 115.8, 102.9])}


@case("correct", "kk17/supermarket_detection: facenet/preprocessing.py",
      "(img - img.mean()) / img.std() per image (FaceNet's prewhitening)")
def prewhiten_per_image(d):
    x = d.cifar.astype(np.float64)
    return {"train": d.cifar, "normalized": (x - x.mean(axis=(1, 2, 3), keepdims=True)) /
            x.std(axis=(1, 2, 3), keepdims=True)}


@case("correct", "UGA-DeepLearning/RDNetTiny: robustness_helpers/config.py",
      "CIFAR10_MEAN (0.4914, 0.4822, 0.4465), CIFAR10_STD (0.2470, 0.2435, 0.2616) on CIFAR-10, train and test")
def cifar_constants_train_test(d):
    mean, std = np.array([0.49139968, 0.48215841, 0.44653091]), np.array([0.24703223, 0.24348513, 0.26158784])
    return _both(d.cifar_train, d.cifar_test, lambda x: (x / 255.0 - mean) / std)
