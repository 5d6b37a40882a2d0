-- Up Migration

-- The MCP tool registry: servers that execution reaches the world through, and the tools discovered on them.
-- A server belongs to a tenant, or to everyone (tenant_id NULL: the platform's own, such as the built-in workspace
-- server). Only an admin registers or changes a server: a stdio server is a program the execution workers run.
CREATE TABLE tool_servers (
  id                text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
  tenant_id         text REFERENCES tenants(id),
  name              text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  transport         text NOT NULL CHECK (transport IN ('stdio', 'http')),
  -- stdio: the program and its arguments (${WORKSPACE} is the task's workspace, ${AGENCY_ROOT} this project) and the
  -- names of the worker's environment variables it may see; nothing else of the worker's environment reaches it.
  command           text,
  args              jsonb NOT NULL DEFAULT '[]',
  env_allow         text[] NOT NULL DEFAULT '{}',
  -- http (Streamable HTTP): the endpoint, and the name of the secret (an environment variable of the execution
  -- workers) that holds its Authorization header. The secret itself is never stored here.
  url               text,
  auth_secret_ref   text CHECK (auth_secret_ref ~ '^[A-Z][A-Z0-9_]{0,127}$'),
  capabilities      text[] NOT NULL DEFAULT '{}',
  security_level    text NOT NULL CHECK (security_level IN ('read-only', 'standard', 'privileged')),
  -- Per-tool levels set by the operator (a server's own claims about its tools are not trusted).
  tool_levels       jsonb NOT NULL DEFAULT '{}',
  timeout_ms        integer NOT NULL DEFAULT 120000 CHECK (timeout_ms BETWEEN 100 AND 3600000),
  max_output_bytes  integer NOT NULL DEFAULT 1048576 CHECK (max_output_bytes BETWEEN 1024 AND 67108864),
  max_concurrency   integer NOT NULL DEFAULT 4 CHECK (max_concurrency BETWEEN 1 AND 256),
  -- Lower first: which of several matching tools is chosen, and whose result stands when two disagree.
  priority          integer NOT NULL DEFAULT 100,
  enabled           boolean NOT NULL DEFAULT true,
  health            text NOT NULL DEFAULT 'unknown' CHECK (health IN ('unknown', 'healthy', 'unhealthy')),
  health_error      text,
  checked_at        timestamptz,
  created_by        text NOT NULL,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  CHECK (transport <> 'stdio' OR (command IS NOT NULL AND url IS NULL)),
  CHECK (transport <> 'http' OR (url IS NOT NULL AND command IS NULL))
);
CREATE UNIQUE INDEX tool_servers_name ON tool_servers (COALESCE(tenant_id, ''), name);

CREATE TABLE tool_server_tools (
  server_id      text NOT NULL REFERENCES tool_servers(id) ON DELETE CASCADE,
  name           text NOT NULL,
  description    text NOT NULL DEFAULT '',
  input_schema   jsonb NOT NULL,
  capabilities   text[] NOT NULL DEFAULT '{}',
  discovered_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (server_id, name)
);

-- The built-in workspace server (mcp/workspace-server): one process per task workspace, confined to it.
INSERT INTO tool_servers (id, tenant_id, name, transport, command, args, capabilities, security_level, tool_levels,
                          timeout_ms, max_output_bytes, max_concurrency, priority, created_by)
VALUES ('workspace', NULL, 'Built-in workspace', 'stdio', 'node',
        '["--import", "tsx", "${AGENCY_ROOT}/mcp/workspace-server/main.ts", "--root", "${WORKSPACE}"]',
        '{fs.read,fs.write,fs.edit,fs.list,fs.search,process.exec,vcs.diff,vcs.status}', 'standard',
        '{"read_file": "read-only", "list_dir": "read-only", "search_text": "read-only", "git_diff": "read-only",
          "git_status": "read-only", "write_file": "standard", "apply_patch": "standard", "run_command": "standard"}',
        600000, 1048576, 8, 0, 'migration');

-- Down Migration
DROP TABLE tool_server_tools;
DROP TABLE tool_servers;
