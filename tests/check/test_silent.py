"""No false alarms: correctly normalized real data gives no finding, whatever else is passed along.

Each check code is asserted silent on each correct recipe (one test per code and recipe), with every
input given at once: raw train and test, their normalized versions, and the statistics used.
"""

from __future__ import annotations

import numpy as np
import pytest

import normlab
import normlab.check as check
from normlab.check import CODES, InputStep, ModelInput


@pytest.fixture(scope="module")
def mnist_div255(mnist_small, mnist_test):
    test = mnist_test[:2000]
    norm = normlab.Scale(by=255).fit(mnist_small)
    return check(mnist_small, normalized=norm.transform(mnist_small), test=test,
                 test_normalized=norm.transform(test), normalizer=norm)


@pytest.fixture(scope="module")
def mnist_standardized(mnist_small, mnist_test):
    test = mnist_test[:2000]
    norm = normlab.Standardize(per="channel").fit(mnist_small)
    return check(mnist_small, normalized=norm.transform(mnist_small), test=test,
                 test_normalized=norm.transform(test), normalizer=norm)


@pytest.fixture(scope="module")
def mnist_constants(mnist_small, mnist_test):
    # the usual torchvision recipe: ToTensor() (x / 255), then Normalize((0.1307,), (0.3081,))
    test = mnist_test[:2000]
    f = lambda x: ((x / 255.0 - 0.1307) / 0.3081).astype(np.float32)  # noqa: E731
    return check(mnist_small, normalized=f(mnist_small), test=test, test_normalized=f(test),
                 stats={"mean": [0.1307], "std": [0.3081]})


@pytest.fixture(scope="module")
def breast_cancer_standardized(breast_cancer):
    preprocessing = pytest.importorskip("sklearn.preprocessing")
    x_train, x_test = breast_cancer
    scaler = preprocessing.StandardScaler().fit(x_train)
    return check(x_train, normalized=scaler.transform(x_train), test=x_test, test_normalized=scaler.transform(x_test),
                 normalizer=scaler)


@pytest.fixture(scope="module")
def breast_cancer_normlab(breast_cancer):
    x_train, x_test = breast_cancer
    norm = normlab.Standardize(per="feature").fit(x_train)
    return check(x_train, normalized=norm.transform(x_train), test=x_test, test_normalized=norm.transform(x_test),
                 normalizer=norm)


@pytest.fixture(scope="module")
def mnist_model_rescaling(mnist_small, mnist_test):
    # raw uint8 pixels into a model whose first layer is Rescaling(1 / 255), trained on [0, 1]
    model = ModelInput("model", (InputStep("rescaling", "Rescaling", np.array(1 / 255), np.array(0.0)),), "conv2d")
    return check(mnist_small, test=mnist_test[:2000], model=model, expects="unit")


RECIPES = ["mnist_div255", "mnist_standardized", "mnist_constants", "breast_cancer_standardized",
           "breast_cancer_normlab", "mnist_model_rescaling"]
#: Codes that only run with model= or expects=.
MODEL_CODES = {"model-input", "expects-mismatch"}


@pytest.mark.parametrize("recipe", RECIPES)
@pytest.mark.parametrize("code", list(CODES))
def test_check_is_silent_on_correctly_normalized_data(recipe, code, request):
    report = request.getfixturevalue(recipe)
    assert code not in report or (code == "model-input" and report.by_code(code)[0].severity == "info"), \
        report.to_text()


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_check_ran_on_the_correct_recipes(recipe, request):
    report = request.getfixturevalue(recipe)
    not_applicable = {"pixels-not-scaled" if recipe.startswith("breast") else "features-not-scaled"}
    if recipe != "mnist_model_rescaling":
        not_applicable |= MODEL_CODES
    assert set(report.checks) == set(CODES) - not_applicable
