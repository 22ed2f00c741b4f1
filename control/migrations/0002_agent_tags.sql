-- Agent tags as rows, so that `GET /v1/agents?tags=a,b` is an indexed lookup instead of a scan
-- of every agent's JSON. Tags are stored lowercased; the agent's config keeps them as written.
-- Rows of agents created before this migration are filled in by the server at startup.

CREATE TABLE agent_tags (
    tenant_id TEXT NOT NULL,
    agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    PRIMARY KEY (agent_id, tag)
);
CREATE INDEX agent_tags_tag ON agent_tags (tenant_id, tag, agent_id);
