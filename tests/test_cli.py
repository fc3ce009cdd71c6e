"""The command line: train, eval, sample and list on tiny data, and clear failures."""
import json

from PIL import Image

from genlab.cli import main


def test_train_eval_sample_list(tmp_path, capsys):
    out = tmp_path / "v"
    assert main(["train", "vae", "--dataset", "digits8", "--hidden", "32", "--latent", "2",
                 "--epochs", "2", "--eval-k", "20", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "epoch 2/2" in err and "steps/s" in err and "ETA" in err  # the progress bar
    card = json.loads((tmp_path / "v.json").read_text())
    records = {r["method"]: r for r in card["likelihoods"]}
    assert records["iw"]["settings"]["k"] == 20 and records["iw"]["stderr"] > 0
    assert records["iw"]["value"] <= card["metrics"]["test_neg_elbo"] + 0.5
    assert records["elbo"]["value"] == card["metrics"]["test_neg_elbo"]  # one ELBO, the same seed
    assert len(card["history"]["epochs"]) == 2

    assert main(["eval", str(out), "--k", "5", "--write"]) == 0
    ks = [r["settings"].get("k") for r in json.loads((tmp_path / "v.json").read_text())["likelihoods"]]
    assert 5 in ks

    png = tmp_path / "grid.png"
    assert main(["sample", str(out), "--seed", "3", "--n", "16", "--nrow", "4", "--out", str(png)]) == 0
    first = png.read_bytes()
    assert Image.open(png).format == "PNG"
    main(["sample", str(out), "--seed", "3", "--n", "16", "--nrow", "4", "--out", str(png)])
    assert png.read_bytes() == first  # same seed, same picture

    capsys.readouterr()
    assert main(["list", str(tmp_path)]) == 0
    assert "v " in capsys.readouterr().out


def test_autoencoder_trains_without_likelihood(tmp_path):
    assert main(["train", "ae", "--dataset", "digits8", "--hidden", "16", "--latent", "2",
                 "--epochs", "1", "--out", str(tmp_path / "a")]) == 0
    card = json.loads((tmp_path / "a.json").read_text())
    assert card["config"]["autoencoder"] and card["likelihoods"] == [] and "test_recon" in card["metrics"]


def test_bad_checkpoint_gives_a_message_not_a_traceback(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "missing")]) == 2
    assert "card not found" in capsys.readouterr().err


def test_gan_resume_extends_history_and_film(tmp_path):
    out = str(tmp_path / "g")
    assert main(["train", "gan", "--epochs", "1", "--limit", "256", "--out", out]) == 0
    before = json.loads((tmp_path / "g.json").read_text())
    assert main(["train", "gan", "--resume", out, "--epochs", "2", "--limit", "256", "--bf16"]) == 0
    card = json.loads((tmp_path / "g.json").read_text())
    steps_per_epoch = before["history"]["epochs"][-1]["step"]
    assert [e["epoch"] for e in card["history"]["epochs"]] == [1, 2, 3]
    assert [e["step"] for e in card["history"]["epochs"]] == [steps_per_epoch * k for k in (1, 2, 3)]
    s = card["history"]["steps"]["step"]
    assert s == sorted(s) and s[-1] == 3 * steps_per_epoch
    assert card["film"]["steps"] == [0, steps_per_epoch, 2 * steps_per_epoch, 3 * steps_per_epoch]
    assert card["extra_tensors"]["film"][0] == 4
    assert card["train_config"]["epochs"] == 3 and card["train_config"]["resumed"][0]["precision"] == "bf16"
    assert card["history"]["train_time_s"] > before["history"]["train_time_s"]


def test_resume_refuses_what_it_cannot_continue(tmp_path, capsys):
    out = str(tmp_path / "v")
    assert main(["train", "vae", "--epochs", "1", "--limit", "200", "--hidden", "16", "--eval-k", "-1", "--out", out]) == 0
    assert main(["train", "gan", "--resume", out, "--epochs", "1"]) == 2
    assert "is not a gan checkpoint" in capsys.readouterr().err
    assert main(["train", "ae", "--resume", out, "--epochs", "1"]) == 2  # a VAE is not an autoencoder
    assert main(["train", "vae", "--resume", out, "--epochs", "1", "--d-lr-mult", "2"]) == 2
    assert "does not apply" in capsys.readouterr().err
    assert main(["train", "gan", "--epochs", "1"]) == 2  # neither --out nor --resume


def test_vae_resume_continues_its_history(tmp_path):
    out = str(tmp_path / "v")
    assert main(["train", "vae", "--dataset", "digits8", "--epochs", "1", "--hidden", "16", "--eval-k", "-1",
                 "--out", out]) == 0
    assert main(["train", "vae", "--resume", out, "--epochs", "1"]) == 0
    card = json.loads((tmp_path / "v.json").read_text())
    assert [e["epoch"] for e in card["history"]["epochs"]] == [1, 2] and card["dataset"]["name"] == "digits8"


def test_eval_works_or_says_why_for_every_kind_of_checkpoint(tmp_path, capsys, ckpt_dir):
    """The GAN has no likelihood: eval scores its samples instead (it used to end in a traceback);
    the classifier is not a generative model: one clear line."""
    assert main(["eval", str(ckpt_dir / "gan-mlp-mnist"), "--n", "500"]) == 0
    out = capsys.readouterr()
    assert "defines no likelihood" in out.err and '"fid"' in out.out
    assert main(["eval", str(ckpt_dir / "mnist-classifier")]) == 0
    assert "not a generative model" in capsys.readouterr().out
    toy = str(tmp_path / "t")
    assert main(["train", "gan2d", "--epochs", "1", "--limit", "512", "--out", toy]) == 0
    capsys.readouterr()
    assert main(["eval", toy]) == 0
    assert '"kl"' in capsys.readouterr().out


def test_an_option_given_is_honoured_or_refused(tmp_path, capsys):
    out = str(tmp_path / "g")
    assert main(["train", "gan", "--latent", "20", "--epochs", "1", "--limit", "128", "--out", out]) == 0
    assert json.loads((tmp_path / "g.json").read_text())["config"]["latent_dim"] == 20
    assert main(["train", "gan", "--beta", "2", "--epochs", "1", "--out", out]) == 2
    assert "beta does not apply to gan" in capsys.readouterr().err
    assert main(["train", "gan", "--likelihood", "gaussian", "--epochs", "1", "--out", out]) == 2
    assert main(["train", "vae", "--toy", "ring8", "--epochs", "1", "--out", out]) == 2
