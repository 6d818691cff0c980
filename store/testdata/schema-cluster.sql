CREATE DATABASE IF NOT EXISTS `waymark` ON CLUSTER `waymark_cluster`;

CREATE TABLE IF NOT EXISTS `waymark`.`schema_migrations` ON CLUSTER `waymark_cluster` (version UInt32, applied_at DateTime) ENGINE = ReplicatedMergeTree('/clickhouse/tables/all/waymark/schema_migrations', '{replica}') ORDER BY version;

CREATE TABLE IF NOT EXISTS `waymark`.`events_local` ON CLUSTER `waymark_cluster` (
	source String,
	message_id String,
	type String,
	event String,
	user_id String,
	anonymous_id String,
	customer_key String,
	ts_ms UInt64,
	date Date,
	original_ts_ms UInt64,
	sent_at_ms UInt64,
	received_at_ms UInt64,
	stored_at_ms UInt64,
	prop_keys Array(String),
	prop_values Array(String),
	page_path String,
	referrer String,
	campaign_source String,
	campaign_medium String,
	campaign_name String,
	channel String,
	raw String,
	person_id String DEFAULT customer_key,
	seq UInt64,
	null_keys Array(String),
	ts_sub_us UInt16,
	item_keys Array(String),
	item_values Array(String),
	item_number_keys Array(String),
	item_number_mins Array(String),
	item_number_maxes Array(String)
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/waymark/events_local', '{replica}')
PARTITION BY toYYYYMM(date)
ORDER BY (customer_key, source, message_id);

CREATE TABLE IF NOT EXISTS `waymark`.`events` ON CLUSTER `waymark_cluster` AS `waymark`.`events_local`
ENGINE = Distributed(`waymark_cluster`, `waymark`, `events_local`, cityHash64(customer_key));

CREATE TABLE IF NOT EXISTS `waymark`.`sessions_local` ON CLUSTER `waymark_cluster` (
	session_id String,
	customer_key String,
	start_ms UInt64,
	end_ms UInt64,
	date Date,
	events UInt32,
	entry_event String,
	exit_event String,
	entry_channel String,
	entry_campaign String,
	stages Array(String),
	end_reason String,
	map_version String,
	version UInt64,
	deleted UInt8,
	person_id String DEFAULT customer_key,
	start_sub_us UInt16,
	end_sub_us UInt16 DEFAULT 999,
	start_seq UInt64
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/waymark/sessions_local', '{replica}', version)
PARTITION BY toYYYYMM(date)
ORDER BY (customer_key, session_id);

CREATE TABLE IF NOT EXISTS `waymark`.`sessions` ON CLUSTER `waymark_cluster` AS `waymark`.`sessions_local`
ENGINE = Distributed(`waymark_cluster`, `waymark`, `sessions_local`, cityHash64(customer_key));

CREATE TABLE IF NOT EXISTS `waymark`.`persons_local` ON CLUSTER `waymark_cluster` (
	customer_key String,
	person_id String,
	version UInt64
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/waymark/persons_local', '{replica}', version)
PARTITION BY tuple()
ORDER BY customer_key;

CREATE TABLE IF NOT EXISTS `waymark`.`persons` ON CLUSTER `waymark_cluster` AS `waymark`.`persons_local`
ENGINE = Distributed(`waymark_cluster`, `waymark`, `persons_local`, cityHash64(customer_key));

CREATE TABLE IF NOT EXISTS `waymark`.`identity_links_local` ON CLUSTER `waymark_cluster` (
	a String,
	b String,
	version UInt64
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/waymark/identity_links_local', '{replica}', version)
PARTITION BY tuple()
ORDER BY (a, b);

CREATE TABLE IF NOT EXISTS `waymark`.`identity_links` ON CLUSTER `waymark_cluster` AS `waymark`.`identity_links_local`
ENGINE = Distributed(`waymark_cluster`, `waymark`, `identity_links_local`, cityHash64(a));

CREATE TABLE IF NOT EXISTS `waymark`.`device_sign_ins_local` ON CLUSTER `waymark_cluster` (
	device String,
	from_ms Array(UInt64),
	users Array(String),
	version UInt64,
	from_seq Array(UInt64),
	from_sub_us Array(UInt16)
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/waymark/device_sign_ins_local', '{replica}', version)
PARTITION BY tuple()
ORDER BY device;

CREATE TABLE IF NOT EXISTS `waymark`.`device_sign_ins` ON CLUSTER `waymark_cluster` AS `waymark`.`device_sign_ins_local`
ENGINE = Distributed(`waymark_cluster`, `waymark`, `device_sign_ins_local`, cityHash64(device));

CREATE TABLE IF NOT EXISTS `waymark`.`superseded_events_local` ON CLUSTER `waymark_cluster` (
	customer_key String,
	source String,
	message_id String,
	ts_ms UInt64,
	ts_sub_us UInt16
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/waymark/superseded_events_local', '{replica}')
PARTITION BY tuple()
ORDER BY (customer_key, source, message_id, ts_ms);

CREATE TABLE IF NOT EXISTS `waymark`.`superseded_events` ON CLUSTER `waymark_cluster` AS `waymark`.`superseded_events_local`
ENGINE = Distributed(`waymark_cluster`, `waymark`, `superseded_events_local`, cityHash64(customer_key));
