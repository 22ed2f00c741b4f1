-- Per-turn latency traces and per-call media statistics: the source of truth for the
-- observability endpoints. Offsets are microseconds since the call's media started;
-- `call_started_ms` is copied from the call so period filters need no join.

CREATE TABLE turn_traces (
    tenant_id TEXT NOT NULL,
    call_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    agent_id TEXT NOT NULL,
    call_started_ms BIGINT NOT NULL,
    turn BIGINT NOT NULL,
    speech_start_us BIGINT,
    speech_end_us BIGINT,
    turn_end_us BIGINT,
    stt_final_us BIGINT,
    llm_request_us BIGINT,
    llm_first_token_us BIGINT,
    first_sentence_us BIGINT,
    tts_request_us BIGINT,
    tts_first_audio_us BIGINT,
    first_audio_sent_us BIGINT,
    first_playback_ack_us BIGINT,
    playback_done_us BIGINT,
    interrupted_us BIGINT,
    barge_in_onset_us BIGINT,
    played_ms BIGINT,
    talk_over BIGINT NOT NULL,
    voice_to_voice_us BIGINT,
    PRIMARY KEY (call_id, seq)
);
CREATE INDEX turn_traces_agent ON turn_traces (tenant_id, agent_id, call_started_ms);
CREATE INDEX turn_traces_latency ON turn_traces (tenant_id, voice_to_voice_us);

CREATE TABLE call_metrics (
    call_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    call_started_ms BIGINT NOT NULL,
    stt_provider TEXT NOT NULL,
    llm_provider TEXT NOT NULL,
    llm_model TEXT,
    tts_provider TEXT NOT NULL,
    silence_ms BIGINT NOT NULL,
    ended BIGINT NOT NULL,
    turns BIGINT NOT NULL,
    caller_frames BIGINT NOT NULL,
    frames_sent BIGINT NOT NULL,
    late_frames BIGINT NOT NULL,
    underruns BIGINT NOT NULL,
    barge_ins BIGINT NOT NULL,
    suppressed_barge_ins BIGINT NOT NULL,
    talk_overs BIGINT NOT NULL,
    provider_errors BIGINT NOT NULL,
    events_dropped BIGINT NOT NULL,
    traces_dropped BIGINT NOT NULL
);
CREATE INDEX call_metrics_agent ON call_metrics (tenant_id, agent_id, call_started_ms);
