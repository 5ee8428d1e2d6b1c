BEGIN TRANSACTION;
CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL);
INSERT INTO "_migrations" VALUES('0001_attempts','2026-12-02 03:26:44');
INSERT INTO "_migrations" VALUES('0002_breakers','2026-12-02 03:26:44');
INSERT INTO "_migrations" VALUES('0003_tasks','2026-12-02 03:26:44');
INSERT INTO "_migrations" VALUES('0004_budgets','2026-12-02 03:26:44');
INSERT INTO "_migrations" VALUES('0005_reporting','2026-12-02 03:26:44');
CREATE TABLE attempts (
    attempt_id TEXT PRIMARY KEY,
    task_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    status TEXT NOT NULL,
    started_ms BIGINT NOT NULL,
    ended_ms BIGINT NOT NULL,
    stage TEXT,
    workflow TEXT,
    rule INTEGER,
    reason TEXT,
    experiment TEXT,
    arm TEXT,
    candidate_index INTEGER NOT NULL DEFAULT 0,
    try_index INTEGER NOT NULL DEFAULT 0,
    task_retry INTEGER NOT NULL DEFAULT 0,
    priority INTEGER,
    labels TEXT NOT NULL DEFAULT '[]',
    input_tokens BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    cache_read_tokens BIGINT NOT NULL DEFAULT 0,
    cache_write_tokens BIGINT NOT NULL DEFAULT 0,
    reasoning_tokens BIGINT NOT NULL DEFAULT 0,
    cost_usd TEXT NOT NULL,
    cost_pico BIGINT NOT NULL,
    reported_cost_usd TEXT,
    latency_ms BIGINT NOT NULL DEFAULT 0,
    error_class TEXT,
    error_message TEXT,
    http_status INTEGER,
    exit_code INTEGER,
    usage_problem TEXT,
    prompt_bytes BIGINT NOT NULL DEFAULT 0,
    prompt_sha256 TEXT,
    run_id TEXT,
    hold_id TEXT,
    extra TEXT NOT NULL DEFAULT '{}'
, first INTEGER NOT NULL DEFAULT 0, completed INTEGER NOT NULL DEFAULT 0, failover_from TEXT, latency_bucket INTEGER NOT NULL DEFAULT 0);
INSERT INTO "attempts" VALUES('att-0','T-0','a','big','ok',1772366400000,1772366401000,NULL,NULL,NULL,NULL,NULL,NULL,0,0,0,0,'["bug", "security"]',1000,100,0,0,0,'0.012',12000000000,NULL,1000,NULL,NULL,NULL,NULL,NULL,0,NULL,NULL,NULL,'{}',1,1,NULL,73);
INSERT INTO "attempts" VALUES('att-1','T-1','b','small','ok',1772366401000,1772366402000,NULL,NULL,NULL,NULL,NULL,NULL,0,0,0,2,'["documentation"]',1000,100,0,0,0,'0.0012',1200000000,NULL,2000,NULL,NULL,NULL,NULL,NULL,0,NULL,NULL,NULL,'{}',1,0,NULL,80);
INSERT INTO "attempts" VALUES('att-2','T-2','b','small','failed',1772452800000,1772452801000,NULL,NULL,NULL,NULL,NULL,NULL,0,0,0,2,'["bug"]',0,0,0,0,0,'0',0,NULL,3000,'overloaded',NULL,NULL,NULL,NULL,0,NULL,NULL,NULL,'{}',1,0,NULL,85);
INSERT INTO "attempts" VALUES('att-3','T-3','a','big','ok',1772452805000,1772452806000,NULL,NULL,NULL,NULL,NULL,NULL,1,0,0,2,'["bug"]',1000,100,0,0,0,'0.012',12000000000,NULL,4000,NULL,NULL,NULL,NULL,NULL,0,NULL,NULL,NULL,'{}',0,1,'b',88);
INSERT INTO "attempts" VALUES('att-4','T-4','b','small','ok',1772539200000,1772539201000,NULL,NULL,NULL,NULL,'ab','small',0,0,0,4,'["bug"]',1000,100,0,0,0,'0.0012',1200000000,NULL,5000,NULL,NULL,NULL,NULL,NULL,0,NULL,NULL,NULL,'{}',1,0,NULL,90);
CREATE TABLE breaker_events (
            provider TEXT NOT NULL,
            at_ms BIGINT NOT NULL,
            state TEXT NOT NULL,
            reason TEXT NOT NULL
        );
INSERT INTO "breaker_events" VALUES('b',1772366400000,'open','3 consecutive failures');
CREATE TABLE breakers (
            provider TEXT PRIMARY KEY,
            state TEXT NOT NULL,
            failures INTEGER NOT NULL DEFAULT 0,
            opened_ms BIGINT,
            probe_ms BIGINT,
            reason TEXT NOT NULL DEFAULT '',
            updated_ms BIGINT NOT NULL
        );
INSERT INTO "breakers" VALUES('b','open',3,1772366400000,NULL,'3 failures',1772366400000);
CREATE TABLE budget_counters (
            counter TEXT PRIMARY KEY,
            scope TEXT NOT NULL,
            period TEXT NOT NULL,
            period_start TEXT NOT NULL,
            limit_pico BIGINT NOT NULL,
            spent_pico BIGINT NOT NULL DEFAULT 0,
            held_pico BIGINT NOT NULL DEFAULT 0
        );
INSERT INTO "budget_counters" VALUES('global|day|2026-03-01','global','day','2026-03-01',10000000000000,12000000000,0);
CREATE TABLE budget_holds (
            hold_id TEXT PRIMARY KEY,
            task_id TEXT NOT NULL,
            amount_pico BIGINT NOT NULL,
            actual_pico BIGINT,
            state TEXT NOT NULL,
            counters TEXT NOT NULL,
            owner TEXT NOT NULL DEFAULT '',
            created_ms BIGINT NOT NULL,
            updated_ms BIGINT NOT NULL
        );
INSERT INTO "budget_holds" VALUES('att-0','T-0',50000000000,12000000000,'settled','["global|day|2026-03-01"]','',1772366400000,1772366400000);
CREATE TABLE rollup_attempts (
    day TEXT NOT NULL, model TEXT NOT NULL, provider TEXT NOT NULL, priority INTEGER NOT NULL,
    stage TEXT NOT NULL, workflow TEXT NOT NULL, experiment TEXT NOT NULL, arm TEXT NOT NULL, escalated INTEGER NOT NULL,
    n BIGINT NOT NULL, ok BIGINT NOT NULL, first BIGINT NOT NULL, opened BIGINT NOT NULL, completed BIGINT NOT NULL,
    cost_pico BIGINT NOT NULL, input_tokens BIGINT NOT NULL, output_tokens BIGINT NOT NULL,
    cache_read_tokens BIGINT NOT NULL, cache_write_tokens BIGINT NOT NULL, reasoning_tokens BIGINT NOT NULL,
    latency_ms BIGINT NOT NULL,
    PRIMARY KEY (day, model, provider, priority, stage, workflow, experiment, arm, escalated)
);
INSERT INTO "rollup_attempts" VALUES('2026-03-01','big','a',0,'','','','',0,1,1,1,1,1,12000000000,1000,100,0,0,0,1000);
INSERT INTO "rollup_attempts" VALUES('2026-03-01','small','b',2,'','','','',0,1,1,1,1,0,1200000000,1000,100,0,0,0,2000);
INSERT INTO "rollup_attempts" VALUES('2026-03-02','small','b',2,'','','','',0,1,0,1,1,0,0,0,0,0,0,0,3000);
INSERT INTO "rollup_attempts" VALUES('2026-03-02','big','a',2,'','','','',0,1,1,0,0,1,12000000000,1000,100,0,0,0,4000);
INSERT INTO "rollup_attempts" VALUES('2026-03-03','small','b',4,'','','ab','small',0,1,1,1,1,0,1200000000,1000,100,0,0,0,5000);
CREATE TABLE rollup_failovers (
    day TEXT NOT NULL, from_provider TEXT NOT NULL, to_provider TEXT NOT NULL, n BIGINT NOT NULL,
    PRIMARY KEY (day, from_provider, to_provider)
);
INSERT INTO "rollup_failovers" VALUES('2026-03-02','b','a',1);
CREATE TABLE rollup_labels (
    day TEXT NOT NULL, label TEXT NOT NULL, model TEXT NOT NULL,
    n BIGINT NOT NULL, ok BIGINT NOT NULL, first BIGINT NOT NULL, opened BIGINT NOT NULL, completed BIGINT NOT NULL,
    cost_pico BIGINT NOT NULL, input_tokens BIGINT NOT NULL, output_tokens BIGINT NOT NULL,
    cache_read_tokens BIGINT NOT NULL, cache_write_tokens BIGINT NOT NULL, reasoning_tokens BIGINT NOT NULL,
    latency_ms BIGINT NOT NULL,
    PRIMARY KEY (day, label, model)
);
INSERT INTO "rollup_labels" VALUES('2026-03-01','bug','big',1,1,1,1,1,12000000000,1000,100,0,0,0,1000);
INSERT INTO "rollup_labels" VALUES('2026-03-01','security','big',1,1,1,1,1,12000000000,1000,100,0,0,0,1000);
INSERT INTO "rollup_labels" VALUES('2026-03-01','documentation','small',1,1,1,1,0,1200000000,1000,100,0,0,0,2000);
INSERT INTO "rollup_labels" VALUES('2026-03-02','bug','small',1,0,1,1,0,0,0,0,0,0,0,3000);
INSERT INTO "rollup_labels" VALUES('2026-03-02','bug','big',1,1,0,0,1,12000000000,1000,100,0,0,0,4000);
INSERT INTO "rollup_labels" VALUES('2026-03-03','bug','small',1,1,1,1,0,1200000000,1000,100,0,0,0,5000);
CREATE TABLE rollup_latency (
    dim TEXT NOT NULL, value TEXT NOT NULL, day TEXT NOT NULL, bucket INTEGER NOT NULL, n BIGINT NOT NULL,
    PRIMARY KEY (dim, value, day, bucket)
);
INSERT INTO "rollup_latency" VALUES('all','all','2026-03-01',73,1);
INSERT INTO "rollup_latency" VALUES('day','2026-03-01','2026-03-01',73,1);
INSERT INTO "rollup_latency" VALUES('model','big','2026-03-01',73,1);
INSERT INTO "rollup_latency" VALUES('provider','a','2026-03-01',73,1);
INSERT INTO "rollup_latency" VALUES('priority','0','2026-03-01',73,1);
INSERT INTO "rollup_latency" VALUES('stage','','2026-03-01',73,1);
INSERT INTO "rollup_latency" VALUES('workflow','','2026-03-01',73,1);
INSERT INTO "rollup_latency" VALUES('experiment',' / ','2026-03-01',73,1);
INSERT INTO "rollup_latency" VALUES('label','bug','2026-03-01',73,1);
INSERT INTO "rollup_latency" VALUES('label','security','2026-03-01',73,1);
INSERT INTO "rollup_latency" VALUES('all','all','2026-03-01',80,1);
INSERT INTO "rollup_latency" VALUES('day','2026-03-01','2026-03-01',80,1);
INSERT INTO "rollup_latency" VALUES('model','small','2026-03-01',80,1);
INSERT INTO "rollup_latency" VALUES('provider','b','2026-03-01',80,1);
INSERT INTO "rollup_latency" VALUES('priority','2','2026-03-01',80,1);
INSERT INTO "rollup_latency" VALUES('stage','','2026-03-01',80,1);
INSERT INTO "rollup_latency" VALUES('workflow','','2026-03-01',80,1);
INSERT INTO "rollup_latency" VALUES('experiment',' / ','2026-03-01',80,1);
INSERT INTO "rollup_latency" VALUES('label','documentation','2026-03-01',80,1);
INSERT INTO "rollup_latency" VALUES('all','all','2026-03-02',85,1);
INSERT INTO "rollup_latency" VALUES('day','2026-03-02','2026-03-02',85,1);
INSERT INTO "rollup_latency" VALUES('model','small','2026-03-02',85,1);
INSERT INTO "rollup_latency" VALUES('provider','b','2026-03-02',85,1);
INSERT INTO "rollup_latency" VALUES('priority','2','2026-03-02',85,1);
INSERT INTO "rollup_latency" VALUES('stage','','2026-03-02',85,1);
INSERT INTO "rollup_latency" VALUES('workflow','','2026-03-02',85,1);
INSERT INTO "rollup_latency" VALUES('experiment',' / ','2026-03-02',85,1);
INSERT INTO "rollup_latency" VALUES('label','bug','2026-03-02',85,1);
INSERT INTO "rollup_latency" VALUES('all','all','2026-03-02',88,1);
INSERT INTO "rollup_latency" VALUES('day','2026-03-02','2026-03-02',88,1);
INSERT INTO "rollup_latency" VALUES('model','big','2026-03-02',88,1);
INSERT INTO "rollup_latency" VALUES('provider','a','2026-03-02',88,1);
INSERT INTO "rollup_latency" VALUES('priority','2','2026-03-02',88,1);
INSERT INTO "rollup_latency" VALUES('stage','','2026-03-02',88,1);
INSERT INTO "rollup_latency" VALUES('workflow','','2026-03-02',88,1);
INSERT INTO "rollup_latency" VALUES('experiment',' / ','2026-03-02',88,1);
INSERT INTO "rollup_latency" VALUES('label','bug','2026-03-02',88,1);
INSERT INTO "rollup_latency" VALUES('all','all','2026-03-03',90,1);
INSERT INTO "rollup_latency" VALUES('day','2026-03-03','2026-03-03',90,1);
INSERT INTO "rollup_latency" VALUES('model','small','2026-03-03',90,1);
INSERT INTO "rollup_latency" VALUES('provider','b','2026-03-03',90,1);
INSERT INTO "rollup_latency" VALUES('priority','4','2026-03-03',90,1);
INSERT INTO "rollup_latency" VALUES('stage','','2026-03-03',90,1);
INSERT INTO "rollup_latency" VALUES('workflow','','2026-03-03',90,1);
INSERT INTO "rollup_latency" VALUES('experiment','ab / small','2026-03-03',90,1);
INSERT INTO "rollup_latency" VALUES('label','bug','2026-03-03',90,1);
CREATE TABLE tasks (
            task_id TEXT PRIMARY KEY,
            state TEXT NOT NULL,
            source TEXT,
            task_json TEXT NOT NULL,
            enqueued_ms BIGINT NOT NULL,
            updated_ms BIGINT NOT NULL,
            retry_count INTEGER NOT NULL DEFAULT 0,
            workflow TEXT,
            stage TEXT,
            last_error TEXT,
            note TEXT
        );
INSERT INTO "tasks" VALUES('T-0','done','file','{"id": "T-0", "prompt": "fix it"}',1772366400000,1772366402000,0,NULL,NULL,NULL,NULL);
CREATE INDEX attempts_started ON attempts (started_ms);
CREATE INDEX attempts_task ON attempts (task_id, started_ms);
CREATE INDEX attempts_provider ON attempts (provider, started_ms);
CREATE INDEX tasks_state ON tasks (state);
CREATE INDEX budget_holds_state ON budget_holds (state);
CREATE INDEX breaker_events_at ON breaker_events (at_ms);
COMMIT;
