--
-- PostgreSQL database dump
--


-- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)
-- Dumped by pg_dump version 15.20 (Debian 15.20-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: _migrations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public._migrations (
    name text NOT NULL,
    applied_at text NOT NULL
);


--
-- Name: attempts; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.attempts (
    attempt_id text NOT NULL,
    task_id text NOT NULL,
    provider text NOT NULL,
    model text NOT NULL,
    status text NOT NULL,
    started_ms bigint NOT NULL,
    ended_ms bigint NOT NULL,
    stage text,
    workflow text,
    rule integer,
    reason text,
    experiment text,
    arm text,
    candidate_index integer DEFAULT 0 NOT NULL,
    try_index integer DEFAULT 0 NOT NULL,
    task_retry integer DEFAULT 0 NOT NULL,
    priority integer,
    labels text DEFAULT '[]'::text NOT NULL,
    input_tokens bigint DEFAULT 0 NOT NULL,
    output_tokens bigint DEFAULT 0 NOT NULL,
    cache_read_tokens bigint DEFAULT 0 NOT NULL,
    cache_write_tokens bigint DEFAULT 0 NOT NULL,
    reasoning_tokens bigint DEFAULT 0 NOT NULL,
    cost_usd text NOT NULL,
    cost_pico bigint NOT NULL,
    reported_cost_usd text,
    latency_ms bigint DEFAULT 0 NOT NULL,
    error_class text,
    error_message text,
    http_status integer,
    exit_code integer,
    usage_problem text,
    prompt_bytes bigint DEFAULT 0 NOT NULL,
    prompt_sha256 text,
    run_id text,
    hold_id text,
    extra text DEFAULT '{}'::text NOT NULL,
    first integer DEFAULT 0 NOT NULL,
    completed integer DEFAULT 0 NOT NULL,
    failover_from text,
    latency_bucket integer DEFAULT 0 NOT NULL
);


--
-- Name: breaker_events; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.breaker_events (
    provider text NOT NULL,
    at_ms bigint NOT NULL,
    state text NOT NULL,
    reason text NOT NULL
);


--
-- Name: breakers; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.breakers (
    provider text NOT NULL,
    state text NOT NULL,
    failures integer DEFAULT 0 NOT NULL,
    opened_ms bigint,
    probe_ms bigint,
    reason text DEFAULT ''::text NOT NULL,
    updated_ms bigint NOT NULL
);


--
-- Name: budget_counters; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.budget_counters (
    counter text NOT NULL,
    scope text NOT NULL,
    period text NOT NULL,
    period_start text NOT NULL,
    limit_pico bigint NOT NULL,
    spent_pico bigint DEFAULT 0 NOT NULL,
    held_pico bigint DEFAULT 0 NOT NULL
);


--
-- Name: budget_holds; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.budget_holds (
    hold_id text NOT NULL,
    task_id text NOT NULL,
    amount_pico bigint NOT NULL,
    actual_pico bigint,
    state text NOT NULL,
    counters text NOT NULL,
    owner text DEFAULT ''::text NOT NULL,
    created_ms bigint NOT NULL,
    updated_ms bigint NOT NULL
);


--
-- Name: rollup_attempts; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.rollup_attempts (
    day text NOT NULL,
    model text NOT NULL,
    provider text NOT NULL,
    priority integer NOT NULL,
    stage text NOT NULL,
    workflow text NOT NULL,
    experiment text NOT NULL,
    arm text NOT NULL,
    escalated integer NOT NULL,
    n bigint NOT NULL,
    ok bigint NOT NULL,
    first bigint NOT NULL,
    opened bigint NOT NULL,
    completed bigint NOT NULL,
    cost_pico bigint NOT NULL,
    input_tokens bigint NOT NULL,
    output_tokens bigint NOT NULL,
    cache_read_tokens bigint NOT NULL,
    cache_write_tokens bigint NOT NULL,
    reasoning_tokens bigint NOT NULL,
    latency_ms bigint NOT NULL
);


--
-- Name: rollup_failovers; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.rollup_failovers (
    day text NOT NULL,
    from_provider text NOT NULL,
    to_provider text NOT NULL,
    n bigint NOT NULL
);


--
-- Name: rollup_labels; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.rollup_labels (
    day text NOT NULL,
    label text NOT NULL,
    model text NOT NULL,
    n bigint NOT NULL,
    ok bigint NOT NULL,
    first bigint NOT NULL,
    opened bigint NOT NULL,
    completed bigint NOT NULL,
    cost_pico bigint NOT NULL,
    input_tokens bigint NOT NULL,
    output_tokens bigint NOT NULL,
    cache_read_tokens bigint NOT NULL,
    cache_write_tokens bigint NOT NULL,
    reasoning_tokens bigint NOT NULL,
    latency_ms bigint NOT NULL
);


--
-- Name: rollup_latency; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.rollup_latency (
    dim text NOT NULL,
    value text NOT NULL,
    day text NOT NULL,
    bucket integer NOT NULL,
    n bigint NOT NULL
);


--
-- Name: tasks; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.tasks (
    task_id text NOT NULL,
    state text NOT NULL,
    source text,
    task_json text NOT NULL,
    enqueued_ms bigint NOT NULL,
    updated_ms bigint NOT NULL,
    retry_count integer DEFAULT 0 NOT NULL,
    workflow text,
    stage text,
    last_error text,
    note text
);


--
-- Data for Name: _migrations; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public._migrations VALUES ('0001_attempts', '2026-12-02 03:26:45.324307+00');
INSERT INTO public._migrations VALUES ('0002_breakers', '2026-12-02 03:26:45.338433+00');
INSERT INTO public._migrations VALUES ('0003_tasks', '2026-12-02 03:26:45.343903+00');
INSERT INTO public._migrations VALUES ('0004_budgets', '2026-12-02 03:26:45.350403+00');
INSERT INTO public._migrations VALUES ('0005_reporting', '2026-12-02 03:26:45.360643+00');


--
-- Data for Name: attempts; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.attempts VALUES ('att-1', 'T-1', 'b', 'small', 'ok', 1772366401000, 1772366402000, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, 0, 2, '["documentation"]', 1000, 100, 0, 0, 0, '0.0012', 1200000000, NULL, 2000, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL, '{}', 1, 0, NULL, 80);
INSERT INTO public.attempts VALUES ('att-2', 'T-2', 'b', 'small', 'failed', 1772452800000, 1772452801000, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, 0, 2, '["bug"]', 0, 0, 0, 0, 0, '0', 0, NULL, 3000, 'overloaded', NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL, '{}', 1, 0, NULL, 85);
INSERT INTO public.attempts VALUES ('att-4', 'T-4', 'b', 'small', 'ok', 1772539200000, 1772539201000, NULL, NULL, NULL, NULL, 'ab', 'small', 0, 0, 0, 4, '["bug"]', 1000, 100, 0, 0, 0, '0.0012', 1200000000, NULL, 5000, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL, '{}', 1, 0, NULL, 90);
INSERT INTO public.attempts VALUES ('att-0', 'T-0', 'a', 'big', 'ok', 1772366400000, 1772366401000, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, 0, 0, '["bug", "security"]', 1000, 100, 0, 0, 0, '0.012', 12000000000, NULL, 1000, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL, '{}', 1, 1, NULL, 73);
INSERT INTO public.attempts VALUES ('att-3', 'T-3', 'a', 'big', 'ok', 1772452805000, 1772452806000, NULL, NULL, NULL, NULL, NULL, NULL, 1, 0, 0, 2, '["bug"]', 1000, 100, 0, 0, 0, '0.012', 12000000000, NULL, 4000, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL, '{}', 0, 1, 'b', 88);


--
-- Data for Name: breaker_events; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.breaker_events VALUES ('b', 1772366400000, 'open', '3 consecutive failures');


--
-- Data for Name: breakers; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.breakers VALUES ('b', 'open', 3, 1772366400000, NULL, '3 failures', 1772366400000);


--
-- Data for Name: budget_counters; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.budget_counters VALUES ('global|day|2026-03-01', 'global', 'day', '2026-03-01', 10000000000000, 12000000000, 0);


--
-- Data for Name: budget_holds; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.budget_holds VALUES ('att-0', 'T-0', 50000000000, 12000000000, 'settled', '["global|day|2026-03-01"]', '', 1772366400000, 1772366400000);


--
-- Data for Name: rollup_attempts; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.rollup_attempts VALUES ('2026-03-01', 'small', 'b', 2, '', '', '', '', 0, 1, 1, 1, 1, 0, 1200000000, 1000, 100, 0, 0, 0, 2000);
INSERT INTO public.rollup_attempts VALUES ('2026-03-02', 'small', 'b', 2, '', '', '', '', 0, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 3000);
INSERT INTO public.rollup_attempts VALUES ('2026-03-03', 'small', 'b', 4, '', '', 'ab', 'small', 0, 1, 1, 1, 1, 0, 1200000000, 1000, 100, 0, 0, 0, 5000);
INSERT INTO public.rollup_attempts VALUES ('2026-03-01', 'big', 'a', 0, '', '', '', '', 0, 1, 1, 1, 1, 1, 12000000000, 1000, 100, 0, 0, 0, 1000);
INSERT INTO public.rollup_attempts VALUES ('2026-03-02', 'big', 'a', 2, '', '', '', '', 0, 1, 1, 0, 0, 1, 12000000000, 1000, 100, 0, 0, 0, 4000);


--
-- Data for Name: rollup_failovers; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.rollup_failovers VALUES ('2026-03-02', 'b', 'a', 1);


--
-- Data for Name: rollup_labels; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.rollup_labels VALUES ('2026-03-01', 'documentation', 'small', 1, 1, 1, 1, 0, 1200000000, 1000, 100, 0, 0, 0, 2000);
INSERT INTO public.rollup_labels VALUES ('2026-03-02', 'bug', 'small', 1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 3000);
INSERT INTO public.rollup_labels VALUES ('2026-03-03', 'bug', 'small', 1, 1, 1, 1, 0, 1200000000, 1000, 100, 0, 0, 0, 5000);
INSERT INTO public.rollup_labels VALUES ('2026-03-01', 'bug', 'big', 1, 1, 1, 1, 1, 12000000000, 1000, 100, 0, 0, 0, 1000);
INSERT INTO public.rollup_labels VALUES ('2026-03-01', 'security', 'big', 1, 1, 1, 1, 1, 12000000000, 1000, 100, 0, 0, 0, 1000);
INSERT INTO public.rollup_labels VALUES ('2026-03-02', 'bug', 'big', 1, 1, 0, 0, 1, 12000000000, 1000, 100, 0, 0, 0, 4000);


--
-- Data for Name: rollup_latency; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.rollup_latency VALUES ('all', 'all', '2026-03-01', 73, 1);
INSERT INTO public.rollup_latency VALUES ('day', '2026-03-01', '2026-03-01', 73, 1);
INSERT INTO public.rollup_latency VALUES ('model', 'big', '2026-03-01', 73, 1);
INSERT INTO public.rollup_latency VALUES ('provider', 'a', '2026-03-01', 73, 1);
INSERT INTO public.rollup_latency VALUES ('priority', '0', '2026-03-01', 73, 1);
INSERT INTO public.rollup_latency VALUES ('stage', '', '2026-03-01', 73, 1);
INSERT INTO public.rollup_latency VALUES ('workflow', '', '2026-03-01', 73, 1);
INSERT INTO public.rollup_latency VALUES ('experiment', ' / ', '2026-03-01', 73, 1);
INSERT INTO public.rollup_latency VALUES ('label', 'bug', '2026-03-01', 73, 1);
INSERT INTO public.rollup_latency VALUES ('label', 'security', '2026-03-01', 73, 1);
INSERT INTO public.rollup_latency VALUES ('all', 'all', '2026-03-01', 80, 1);
INSERT INTO public.rollup_latency VALUES ('day', '2026-03-01', '2026-03-01', 80, 1);
INSERT INTO public.rollup_latency VALUES ('model', 'small', '2026-03-01', 80, 1);
INSERT INTO public.rollup_latency VALUES ('provider', 'b', '2026-03-01', 80, 1);
INSERT INTO public.rollup_latency VALUES ('priority', '2', '2026-03-01', 80, 1);
INSERT INTO public.rollup_latency VALUES ('stage', '', '2026-03-01', 80, 1);
INSERT INTO public.rollup_latency VALUES ('workflow', '', '2026-03-01', 80, 1);
INSERT INTO public.rollup_latency VALUES ('experiment', ' / ', '2026-03-01', 80, 1);
INSERT INTO public.rollup_latency VALUES ('label', 'documentation', '2026-03-01', 80, 1);
INSERT INTO public.rollup_latency VALUES ('all', 'all', '2026-03-02', 85, 1);
INSERT INTO public.rollup_latency VALUES ('day', '2026-03-02', '2026-03-02', 85, 1);
INSERT INTO public.rollup_latency VALUES ('model', 'small', '2026-03-02', 85, 1);
INSERT INTO public.rollup_latency VALUES ('provider', 'b', '2026-03-02', 85, 1);
INSERT INTO public.rollup_latency VALUES ('priority', '2', '2026-03-02', 85, 1);
INSERT INTO public.rollup_latency VALUES ('stage', '', '2026-03-02', 85, 1);
INSERT INTO public.rollup_latency VALUES ('workflow', '', '2026-03-02', 85, 1);
INSERT INTO public.rollup_latency VALUES ('experiment', ' / ', '2026-03-02', 85, 1);
INSERT INTO public.rollup_latency VALUES ('label', 'bug', '2026-03-02', 85, 1);
INSERT INTO public.rollup_latency VALUES ('all', 'all', '2026-03-02', 88, 1);
INSERT INTO public.rollup_latency VALUES ('day', '2026-03-02', '2026-03-02', 88, 1);
INSERT INTO public.rollup_latency VALUES ('model', 'big', '2026-03-02', 88, 1);
INSERT INTO public.rollup_latency VALUES ('provider', 'a', '2026-03-02', 88, 1);
INSERT INTO public.rollup_latency VALUES ('priority', '2', '2026-03-02', 88, 1);
INSERT INTO public.rollup_latency VALUES ('stage', '', '2026-03-02', 88, 1);
INSERT INTO public.rollup_latency VALUES ('workflow', '', '2026-03-02', 88, 1);
INSERT INTO public.rollup_latency VALUES ('experiment', ' / ', '2026-03-02', 88, 1);
INSERT INTO public.rollup_latency VALUES ('label', 'bug', '2026-03-02', 88, 1);
INSERT INTO public.rollup_latency VALUES ('all', 'all', '2026-03-03', 90, 1);
INSERT INTO public.rollup_latency VALUES ('day', '2026-03-03', '2026-03-03', 90, 1);
INSERT INTO public.rollup_latency VALUES ('model', 'small', '2026-03-03', 90, 1);
INSERT INTO public.rollup_latency VALUES ('provider', 'b', '2026-03-03', 90, 1);
INSERT INTO public.rollup_latency VALUES ('priority', '4', '2026-03-03', 90, 1);
INSERT INTO public.rollup_latency VALUES ('stage', '', '2026-03-03', 90, 1);
INSERT INTO public.rollup_latency VALUES ('workflow', '', '2026-03-03', 90, 1);
INSERT INTO public.rollup_latency VALUES ('experiment', 'ab / small', '2026-03-03', 90, 1);
INSERT INTO public.rollup_latency VALUES ('label', 'bug', '2026-03-03', 90, 1);


--
-- Data for Name: tasks; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.tasks VALUES ('T-0', 'done', 'file', '{"id": "T-0", "prompt": "fix it"}', 1772366400000, 1772366402000, 0, NULL, NULL, NULL, NULL);


--
-- Name: _migrations _migrations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public._migrations
    ADD CONSTRAINT _migrations_pkey PRIMARY KEY (name);


--
-- Name: attempts attempts_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.attempts
    ADD CONSTRAINT attempts_pkey PRIMARY KEY (attempt_id);


--
-- Name: breakers breakers_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.breakers
    ADD CONSTRAINT breakers_pkey PRIMARY KEY (provider);


--
-- Name: budget_counters budget_counters_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.budget_counters
    ADD CONSTRAINT budget_counters_pkey PRIMARY KEY (counter);


--
-- Name: budget_holds budget_holds_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.budget_holds
    ADD CONSTRAINT budget_holds_pkey PRIMARY KEY (hold_id);


--
-- Name: rollup_attempts rollup_attempts_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.rollup_attempts
    ADD CONSTRAINT rollup_attempts_pkey PRIMARY KEY (day, model, provider, priority, stage, workflow, experiment, arm, escalated);


--
-- Name: rollup_failovers rollup_failovers_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.rollup_failovers
    ADD CONSTRAINT rollup_failovers_pkey PRIMARY KEY (day, from_provider, to_provider);


--
-- Name: rollup_labels rollup_labels_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.rollup_labels
    ADD CONSTRAINT rollup_labels_pkey PRIMARY KEY (day, label, model);


--
-- Name: rollup_latency rollup_latency_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.rollup_latency
    ADD CONSTRAINT rollup_latency_pkey PRIMARY KEY (dim, value, day, bucket);


--
-- Name: tasks tasks_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tasks
    ADD CONSTRAINT tasks_pkey PRIMARY KEY (task_id);


--
-- Name: attempts_provider; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX attempts_provider ON public.attempts USING btree (provider, started_ms);


--
-- Name: attempts_started; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX attempts_started ON public.attempts USING btree (started_ms);


--
-- Name: attempts_task; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX attempts_task ON public.attempts USING btree (task_id, started_ms);


--
-- Name: breaker_events_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX breaker_events_at ON public.breaker_events USING btree (at_ms);


--
-- Name: budget_holds_state; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX budget_holds_state ON public.budget_holds USING btree (state);


--
-- Name: tasks_state; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX tasks_state ON public.tasks USING btree (state);


--
-- PostgreSQL database dump complete
--


