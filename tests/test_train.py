"""The trainer: learning, reproducibility, thread control, the NaN guard, history."""

import json
import math
import threading
import time

import numpy as np
import pytest
import torch

from tests.conftest import digits_config
from vae_core.evaluate import dataset_metrics, low_kl_units
from vae_core.models import ConfigError
from vae_core.train import (
    TEST_METRIC_KEYS,
    History,
    TrainConfig,
    Trainer,
    TrainerState,
    cli_command,
    configs_from_settings,
)


def make(digits, kind="vae", epochs=2, **kw) -> Trainer:
    return Trainer(
        digits_config(kind, 2),
        TrainConfig(dataset="digits", epochs=epochs, **kw),
        dataset=digits,
        device="cpu",
    )


def wait_for(cond, timeout=20.0):
    t0 = time.time()
    while not cond():
        if time.time() - t0 > timeout:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


class TestLearning:
    def test_steps_lower_the_loss_and_change_the_weights(self, digits):
        tr = make(digits, epochs=10)
        before = {k: v.clone() for k, v in tr.model.state_dict().items()}
        e0 = dataset_metrics(tr.model, digits.x_test).neg_elbo
        tr.run(max_steps=60)
        e1 = dataset_metrics(tr.model, digits.x_test).neg_elbo
        assert e1 < e0 - 5, (e0, e1)
        assert all(not torch.equal(before[k], v) for k, v in tr.model.state_dict().items())

    def test_seeded_runs_are_reproducible(self, digits):
        a, b = make(digits, seed=7), make(digits, seed=7)
        a.run(max_steps=25)
        b.run(max_steps=25)
        assert a.history.loss == b.history.loss
        assert all(torch.equal(x, y) for x, y in zip(a.model.parameters(), b.model.parameters()))
        c = make(digits, seed=8)
        c.run(max_steps=25)
        assert c.history.loss != a.history.loss

    def test_ae_trains_without_kl(self, digits):
        tr = make(digits, kind="ae", beta=4.0)
        tr.run(max_steps=20)
        assert all(k == 0 for k in tr.history.kl) and tr.history.kl_per_dim[-1] == []
        assert tr.history.loss[-1] == pytest.approx(-tr.history.recon[-1], rel=1e-5)

    def test_history_and_evaluations(self, digits):
        tr = make(digits, epochs=2, warmup_steps=10, beta=2.0)
        tr.run()
        h = tr.history
        assert tr.state == TrainerState.FINISHED and tr.global_step == tr.total_steps == 2 * 12
        assert len(h.step) == len(h.loss) == len(h.kl_per_dim) == 24 and len(h.kl_per_dim[0]) == 2
        assert h.beta[0] == pytest.approx(0.2) and h.beta[-1] == 2.0
        assert h.eval_step == [12, 24]  # once per epoch
        assert all(0 <= a <= 2 for a in h.active_units) and all(t > 0 for t in h.throughput)
        assert h.test_neg_elbo[-1] == pytest.approx(h.test_recon[-1] + h.test_kl[-1], rel=1e-6)
        snap = tr.snapshot()
        assert snap.step == 24 and snap.epoch == 2.0 and snap.history.loss == h.loss
        snap.history.loss.append(0.0)
        assert len(h.loss) == 24  # snapshots are copies

    def test_config_validation(self, digits):
        with pytest.raises(ConfigError, match="learning rate"):
            make(digits, lr=-1.0)
        with pytest.raises(ConfigError, match="batch size"):
            make(digits, batch_size=0)
        with pytest.raises(ConfigError, match="784 .*64|64 pixels"):
            Trainer(digits_config().__class__(), TrainConfig(dataset="digits"), dataset=digits, device="cpu")


class TestThreads:
    def test_start_pause_resume_stop_from_another_thread(self, digits):
        tr = make(digits, epochs=500)
        tr.start()
        wait_for(lambda: tr.global_step > 5)
        assert tr.state == TrainerState.RUNNING and tr.is_alive
        threading.Thread(target=tr.pause).start()
        wait_for(lambda: tr.state == TrainerState.PAUSED)
        time.sleep(0.05)
        held = tr.global_step
        time.sleep(0.3)
        assert tr.global_step == held and tr.is_alive  # paused: the thread waits, no steps
        rec = tr.step()  # single step while paused
        assert rec is not None and tr.global_step == held + 1
        tr.resume()
        wait_for(lambda: tr.global_step > held + 10)
        tr.stop()
        assert tr.join(timeout=10)
        assert tr.state == TrainerState.STOPPED and not tr.is_alive
        stopped_at = tr.global_step
        time.sleep(0.1)
        assert tr.global_step == stopped_at

    def test_a_finished_run_extends_with_the_same_model(self, digits):
        tr = make(digits, epochs=1)
        tr.start()
        assert tr.join(timeout=30) and tr.state == TrainerState.FINISHED
        end, per_epoch = tr.global_step, tr.steps_per_epoch
        assert tr.step() is None  # over: no step until extended
        assert tr.extend(2) and tr.state == TrainerState.PAUSED and tr.config.epochs == 3
        assert tr.total_steps == 3 * per_epoch and tr.message == ""
        assert tr.step()["step"] == end + 1  # the same model, from where it stopped
        tr.resume()  # no thread any more: a new one, to the new end
        assert tr.join(timeout=30) and tr.state == TrainerState.FINISHED
        assert tr.global_step == 3 * per_epoch and tr.history.step == list(range(1, 3 * per_epoch + 1))
        assert "3 epoch" in str(tr.message)
        assert not tr.extend(0)

    def test_stop_while_paused_ends_the_thread(self, digits):
        tr = make(digits, epochs=500)
        tr.start()
        wait_for(lambda: tr.global_step > 0)
        tr.pause()
        tr.stop()
        assert tr.join(timeout=10) and tr.state == TrainerState.STOPPED

    def test_readers_see_consistent_snapshots_while_training(self, digits):
        tr = make(digits, epochs=200)
        tr.start()
        for _ in range(30):
            s = tr.snapshot()
            assert len(s.history.step) == len(s.history.loss) == len(s.history.kl_per_dim) == s.step
            m = tr.model_copy()
            assert not m.training
            time.sleep(0.005)
        tr.stop()
        tr.join(10)

    def test_thread_runs_to_finish(self, digits):
        tr = make(digits, epochs=3)
        tr.start()
        assert tr.join(timeout=30)
        assert tr.state == TrainerState.FINISHED and "finished" in tr.message


class TestNaNGuard:
    def test_diverging_run_stops_with_a_message_and_keeps_good_weights(self, digits):
        tr = make(digits, epochs=20, lr=10.0)
        tr.run()
        assert tr.state == TrainerState.DIVERGED
        assert "diverged" in tr.message and "Lower the learning rate" in tr.message
        assert all(torch.isfinite(p).all() for p in tr.model.parameters())
        x = digits.batch("test", slice(0, 64))
        logits, mu, logvar, _ = tr.model(x)
        assert torch.isfinite(logits).all() and torch.isfinite(logvar).all()
        assert all(math.isfinite(v) for v in tr.history.loss)
        assert tr.step() is None  # stays stopped

    def test_injected_nan_restores_the_previous_weights(self, digits):
        tr = make(digits, epochs=5)
        tr.run(max_steps=4)
        good = [p.detach().clone() for p in tr.model.parameters()]  # these give step 5 its finite loss
        tr.step()
        assert not all(torch.equal(a, b) for a, b in zip(good, tr.model.parameters()))
        with torch.no_grad():
            next(tr.model.parameters())[0, 0] = float("nan")
        assert tr.step() is None
        assert tr.state == TrainerState.DIVERGED and tr.global_step == 5
        assert all(torch.equal(a, b) for a, b in zip(good, tr.model.parameters()))


class TestOneGradientPath:
    def test_training_uses_torch_adam_and_autograd(self, digits):
        tr = make(digits)
        assert type(tr.optimizer) is torch.optim.Adam
        assert tr.optimizer.defaults["fused"] is True  # the CPU has torch's fused Adam kernel
        before = [p.detach().clone() for p in tr.model.parameters()]
        tr.step()
        assert all(p.grad is not None for p in tr.model.parameters())  # filled by loss.backward()
        assert all(not torch.equal(a, p) for a, p in zip(before, tr.model.parameters()))


class TestStates:
    def test_states_are_strings(self):
        assert TrainerState.RUNNING == "running" and isinstance(TrainerState.PAUSED, str)
        assert f"{TrainerState.DIVERGED}" == "diverged" and str(TrainerState.IDLE) == "idle"
        assert json.dumps({"s": TrainerState.FINISHED}) == '{"s": "finished"}'
        assert TrainerState("stopped") is TrainerState.STOPPED

    def test_metadata_is_json_with_the_test_metrics(self, digits):
        tr = make(digits, epochs=1)
        tr.run()
        meta = tr.metadata("cmd")
        assert meta["state"] == "finished" and type(meta["state"]) is str
        assert set(meta["test_metrics"]) == set(TEST_METRIC_KEYS)
        assert meta["test_metrics"]["neg_elbo"] == tr.last_eval.neg_elbo == tr.history.test_neg_elbo[-1]
        assert meta["test_metrics"]["n"] == digits.x_test.shape[0]
        json.dumps(meta)


class TestReading:
    def test_consistent_copy_and_inspect_model(self, digits):
        tr = make(digits)
        tr.run(max_steps=3)
        model, meta = tr.consistent_copy("c")
        assert meta["steps"] == 3 and meta["command"] == "c" and not model.training
        assert all(torch.equal(a, b.cpu()) for a, b in zip(model.parameters(), tr.model.parameters()))
        step, n = tr.inspect_model(lambda m: sum(p.numel() for p in m.parameters()))
        assert step == 3 and n == sum(p.numel() for p in model.parameters())


class TestHistoryArrays:
    def test_columns_and_slices(self):
        h = History(
            step=[1, 2, 3],
            epoch=[0.5, 1.0, 1.5],
            loss=[5.0, 4.0, 3.0],
            recon=[-4.0, -3.0, -2.5],
            kl=[1.0, 1.0, 0.5],
            kl_per_dim=[[0.5, 0.5], [0.25, 0.75], [0.5, 0.0]],
            beta=[1.0, 1.0, 1.0],
        )
        a = h.arrays()
        assert a["step"].dtype == np.int64 and a["kl_per_dim"].shape == (3, 2)
        np.testing.assert_allclose(a["recon_cost"], [4.0, 3.0, 2.5])
        b = h.arrays(1, 3)
        np.testing.assert_array_equal(b["step"], [2, 3])
        np.testing.assert_allclose(b["kl_per_dim"], [[0.25, 0.75], [0.5, 0.0]])
        assert h.arrays(3, 3)["kl_per_dim"].shape == (0, 0)

    def test_values_lost_in_json_become_nan(self):
        h = History.from_dict(
            {
                "step": [1, 2],
                "loss": [None, 2.0],
                "recon": [-1.0],
                "kl": [0.5, 0.5],
                "kl_per_dim": [[0.5], [None, 0.5]],
                "beta": [1.0, 1.0],
            }
        )
        a = h.arrays()
        assert np.isnan(a["loss"][0]) and a["loss"][1] == 2.0
        assert np.isnan(a["recon_cost"]).all()  # a column of the wrong length
        assert a["kl_per_dim"].shape == (2, 2) and np.isnan(a["kl_per_dim"][0, 1])
        assert History().arrays(latent_dim=3)["kl_per_dim"].shape == (0, 3)

    def test_eval_arrays(self, digits):
        tr = make(digits, epochs=2)
        tr.run()
        e = tr.history.eval_arrays()
        np.testing.assert_array_equal(e["eval_step"], [12, 24])
        np.testing.assert_allclose(e["test_neg_elbo"], tr.history.test_neg_elbo)
        assert e["active_units"].shape == (2,)
        # the low-KL count of each test, from that test's own KL per dim (vae_core.evaluate.low_kl_units)
        np.testing.assert_array_equal(e["low_kl_units"], tr.history.low_kl_units)
        assert tr.history.low_kl_units[-1] == low_kl_units(tr.last_eval.kl_per_dim)
        assert tr.history.last_eval()["low_kl_units"] == tr.history.low_kl_units[-1]

    def test_a_history_saved_before_the_low_kl_column(self):
        """Shipped checkpoints' histories have no low_kl_units: the last test then says None, the arrays nan."""
        h = History.from_dict(
            {
                "eval_step": [5],
                "eval_epoch": [1.0],
                "test_neg_elbo": [90.0],
                "test_recon": [80.0],
                "test_kl": [10.0],
                "active_units": [3],
                "throughput": [1e3],
            }
        )
        assert h.last_eval()["low_kl_units"] is None and h.last_eval()["active_units"] == 3
        assert np.isnan(h.eval_arrays()["low_kl_units"]).all()


class TestSettings:
    """The Train form's values -> configs (the form's own messages are tested in test_hostile.py)."""

    VALS = dict(
        latent_dim=4, beta=1.0, warmup_steps=0, free_bits=0.0, lr=1e-3, batch_size=64, epochs=3, seed=0
    )

    @pytest.mark.parametrize("text", ["512,256", "512-256", "512 256", " 512 , 256 "])
    def test_hidden_syntax_is_the_clis(self, text):
        mc, tc, errors = configs_from_settings("digits", (1, 8, 8), "vae", hidden=text, **self.VALS)
        assert errors == [] and mc.hidden == (512, 256) and tc.epochs == 3

    def test_every_bad_field_is_named(self):
        vals = {**self.VALS, "lr": 0.0, "epochs": 0}
        mc, tc, errors = configs_from_settings("digits", (1, 8, 8), "vae", hidden="abc", **vals)
        assert mc is None and tc is None and len(errors) == 3
        assert errors[0].startswith("Hidden sizes must be whole numbers")

    def test_an_ae_ignores_the_kl_settings(self):
        vals = {**self.VALS, "beta": 4.0, "free_bits": 1.0}
        mc, tc, errors = configs_from_settings("digits", (1, 8, 8), "ae", hidden="32", **vals)
        assert not errors and mc.kind == "ae" and tc.beta == 0.0 and tc.free_bits == 0.0

    def test_cli_command_round_trips_through_the_parser(self):
        from vae_core.train import build_parser

        mc, tc, _ = configs_from_settings("digits", (1, 8, 8), "vae", hidden="64-32", **self.VALS)
        args = build_parser().parse_args(cli_command(mc, tc).split()[3:])
        assert (
            args.hidden == (64, 32)
            and args.latent == 4
            and args.batch_size == 64
            and args.dataset == "digits"
        )


class TestLikelihoodsAndBinarization:
    def test_binarize_trains_on_binary_images(self, digits) -> None:
        seen: list[torch.Tensor] = []
        tr = Trainer(
            digits_config("vae", 2),
            TrainConfig(dataset="digits", epochs=1, seed=0, binarize=True, eval_size=200),
            dataset=digits,
            device="cpu",
        )
        real_forward = tr.model.forward

        def spy(x, *a, **k):
            seen.append(x.detach().clone())
            return real_forward(x, *a, **k)

        tr.model.forward = spy
        tr.step()
        tr.step()
        assert all(set(x.unique().tolist()) <= {0.0, 1.0} for x in seen)
        assert not torch.equal(seen[0], seen[1])  # redrawn every step (other batch, other draws)
        res = tr.evaluate()
        assert res.binarized and tr.metadata()["train_config"]["binarize"] is True

    def test_binarized_evaluation_is_fixed_and_differs_from_grey(self, digits, trained_vae_z2) -> None:
        from vae_core.evaluate import dataset_metrics

        a = dataset_metrics(trained_vae_z2, digits.x_test, seed=0, binarize=True)
        b = dataset_metrics(trained_vae_z2, digits.x_test, seed=0, binarize=True)
        grey = dataset_metrics(trained_vae_z2, digits.x_test, seed=0)
        assert a == b and a.neg_elbo != grey.neg_elbo and not grey.binarized

    def test_cli_flags(self, tmp_path) -> None:
        from vae_core.checkpoint import load_checkpoint
        from vae_core.train import build_parser, cli_command, main

        args = build_parser().parse_args(["--likelihood", "continuous_bernoulli", "--binarize"])
        assert args.likelihood == "continuous_bernoulli" and args.binarize
        out = tmp_path / "cb.safetensors"
        assert (
            main(
                [
                    "--dataset",
                    "digits",
                    "--latent",
                    "2",
                    "--hidden",
                    "32",
                    "--epochs",
                    "1",
                    "--device",
                    "cpu",
                    "--likelihood",
                    "continuous_bernoulli",
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
        ck = load_checkpoint(out)
        assert ck.config.likelihood == "continuous_bernoulli"
        cmd = cli_command(ck.config, TrainConfig(dataset="digits", binarize=True))
        assert "--likelihood continuous_bernoulli" in cmd and cmd.endswith("--binarize")
        assert build_parser().parse_args(cmd.split()[3:]).binarize
