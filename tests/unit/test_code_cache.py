"""The agent's upload pieces kept between runs (i2scli/link/code_cache.py)."""

from __future__ import annotations

from i2scli.link import agent_code, code_cache


def test_pieces_are_made_once_and_read_back(tmp_path, monkeypatch):
    monkeypatch.setenv("I2S_CACHE_DIR", str(tmp_path))
    made = []

    def make():
        made.append(1)
        return ["a = 1\n", "b = 2\n"]

    assert code_cache.pieces("v1", "k", make) == ["a = 1\n", "b = 2\n"]
    assert code_cache.pieces("v1", "k", make) == ["a = 1\n", "b = 2\n"]
    assert len(made) == 1


def test_garbage_in_the_file_is_made_again(tmp_path, monkeypatch):
    monkeypatch.setenv("I2S_CACHE_DIR", str(tmp_path))
    (tmp_path / "agent-v1.json").write_text('{"k": [1, 2], "j": "x"}')
    assert code_cache.pieces("v1", "k", lambda: ["x\n"]) == ["x\n"]
    (tmp_path / "agent-v1.json").write_text("{not json")
    assert code_cache.pieces("v1", "k", lambda: ["y\n"]) == ["y\n"]


def test_a_new_version_removes_the_old_pieces(tmp_path, monkeypatch):
    monkeypatch.setenv("I2S_CACHE_DIR", str(tmp_path))
    code_cache.pieces("v1", "k", lambda: ["x\n"])
    code_cache.pieces("v2", "k", lambda: ["y\n"])
    assert sorted(p.name for p in tmp_path.glob("agent-*.json")) == ["agent-v2.json"]


def test_a_cache_that_cannot_be_written_only_means_making_them_each_time(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("I2S_CACHE_DIR", str(tmp_path / "file" / "cache"))
    assert code_cache.pieces("v1", "k", lambda: ["x\n"]) == ["x\n"]
    assert code_cache.pieces("v1", "k", lambda: ["y\n"]) == ["y\n"]


def test_cached_agent_pieces_are_the_pieces_made_fresh(tmp_path, monkeypatch):
    monkeypatch.setenv("I2S_CACHE_DIR", str(tmp_path))
    names = [*agent_code.CORE_MODULES, "i2s_record"]
    first = agent_code.upload_chunks(names)
    assert list(tmp_path.glob("agent-*.json"))
    assert agent_code.upload_chunks(names) == first
    order = agent_code.upload_order(names)
    assert first == agent_code._chunks([agent_code.ast.parse(agent_code.module_source(n)) for n in order], 4096)
    assert agent_code.coder_chunks("Decoder", arch=4) == agent_code._coder_chunks("Decoder", 4096, True)
    assert agent_code.coder_chunks("Encoder") == agent_code._coder_chunks("Encoder", 4096, False)
