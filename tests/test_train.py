"""The trainer: learning, reproducibility, thread control, the NaN guard, history."""

import math
import threading
import time

import pytest
import torch

from vae_core.models import ConfigError
from vae_core.train import TrainConfig, Trainer, TrainerState, evaluate_model
from tests.conftest import digits_config


def make(digits, kind="vae", epochs=2, **kw) -> Trainer:
    return Trainer(digits_config(kind, 2), TrainConfig(dataset="digits", epochs=epochs, **kw), dataset=digits, device="cpu")


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
        e0 = evaluate_model(tr.model, digits.x_test).neg_elbo
        tr.run(max_steps=60)
        e1 = evaluate_model(tr.model, digits.x_test).neg_elbo
        assert e1 < e0 - 5, (e0, e1)
        assert all(not torch.equal(before[k], v) for k, v in tr.model.state_dict().items())

    def test_seeded_runs_are_reproducible(self, digits):
        a, b = make(digits, seed=7), make(digits, seed=7)
        a.run(max_steps=25); b.run(max_steps=25)
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
        tr.stop(); tr.join(10)

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


def test_lean_adam_is_torch_adam_bit_for_bit() -> None:
    """The trainer's LeanAdam skips torch.optim's bookkeeping, not any of its arithmetic."""
    from vae_core.models import ModelConfig, build_model
    from vae_core.train import LeanAdam

    torch.manual_seed(0)
    a = build_model(ModelConfig(input_dim=64, image_shape=(1, 8, 8), hidden=(16,), latent_dim=3))
    b = build_model(ModelConfig(input_dim=64, image_shape=(1, 8, 8), hidden=(16,), latent_dim=3))
    b.load_state_dict(a.state_dict())
    lean, ref = LeanAdam(list(a.parameters()), lr=3e-3), torch.optim.Adam(b.parameters(), lr=3e-3, fused=True)
    gen = torch.Generator().manual_seed(1)
    for _ in range(6):
        grads = [torch.randn(p.shape, generator=gen) for p in a.parameters()]
        for pa, pb, g in zip(a.parameters(), b.parameters(), grads):
            pa.grad, pb.grad = g.clone(), g.clone()
        lean.step()
        ref.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert any(not torch.equal(pa, pc) for pa, pc in zip(
        a.parameters(), build_model(ModelConfig(input_dim=64, image_shape=(1, 8, 8), hidden=(16,), latent_dim=3)).parameters()))
