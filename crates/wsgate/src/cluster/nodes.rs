//! The node table (`P:nodes`): a node takes a free number (1–255, the first byte of its
//! connection ids) at start and renews its deadline with every heartbeat. Each step is one Lua
//! script on that one key, timed by the Redis server's clock, so nodes never compare clocks and
//! two nodes never take one number.
//!
//! A node whose deadline passed is dead. The survivor that marks it first reaps it (its
//! connections' `$disconnect`, then its keys) and leaves a tombstone `dead:{instance}`, so that
//! the node, should it come back, learns that the cluster let it go.

use redis::Script;
use serde::Deserialize;

use super::store::{Keys, Store};

/// What the table says of one node.
#[derive(Debug, Clone, Deserialize)]
pub struct NodeEntry {
    /// The node's number.
    #[serde(default)]
    pub number: u8,
    /// `cluster.node_id`.
    pub name: String,
    /// Epoch ms (Redis's clock) of its last heartbeat.
    pub heartbeat: u64,
    /// Its connections at its last heartbeat.
    pub connections: u64,
    /// Epoch ms after which it is dead.
    pub deadline: u64,
}

const NOW: &str = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000)";

/// `KEYS[1]` the table; `ARGV` instance, name, ttl ms, first number to try. The number taken,
/// or 0 when all 255 are.
fn claim_script() -> Script {
    Script::new(&format!(
        "{NOW}
        for i = 0, 254 do
          local n = (tonumber(ARGV[4]) + i) % 255 + 1
          if redis.call('HEXISTS', KEYS[1], n) == 0 then
            redis.call('HSET', KEYS[1], n, cjson.encode({{instance = ARGV[1], name = ARGV[2],
              heartbeat = now, connections = 0, deadline = now + tonumber(ARGV[3])}}))
            return n
          end
        end
        return 0"
    ))
}

/// `KEYS[1]` the table; `ARGV` number, instance, name, ttl ms, connections. 0: renewed; 1: the
/// entry was missing (Redis lost it) and is back; -1: the cluster declared this node dead.
fn heartbeat_script() -> Script {
    Script::new(&format!(
        "{NOW}
        if redis.call('HEXISTS', KEYS[1], 'dead:' .. ARGV[2]) == 1 then return -1 end
        local found = redis.call('HGET', KEYS[1], ARGV[1])
        local back = 1
        if found then
          local entry = cjson.decode(found)
          if entry.instance ~= ARGV[2] or entry.reaper then return -1 end
          back = 0
        end
        redis.call('HSET', KEYS[1], ARGV[1], cjson.encode({{instance = ARGV[2], name = ARGV[3],
          heartbeat = now, connections = tonumber(ARGV[5]), deadline = now + tonumber(ARGV[4])}}))
        return back"
    ))
}

/// `KEYS[1]` the table; `ARGV` reaper instance, lock ms. Marks one node whose deadline passed
/// (and that nobody is reaping, or whose reaper stalled) as reaped by the caller; its number
/// and instance, or nil. Tombstones older than a day go.
fn take_dead_script() -> Script {
    Script::new(&format!(
        "{NOW}
        local all = redis.call('HGETALL', KEYS[1])
        for i = 1, #all, 2 do
          local field, value = all[i], all[i + 1]
          if string.sub(field, 1, 5) == 'dead:' then
            if tonumber(value) < now then redis.call('HDEL', KEYS[1], field) end
          else
            local entry = cjson.decode(value)
            if entry.deadline < now and (not entry.reaper or entry.reap_until < now) then
              entry.reaper = ARGV[1]
              entry.reap_until = now + tonumber(ARGV[2])
              redis.call('HSET', KEYS[1], field, cjson.encode(entry))
              return {{field, entry.instance}}
            end
          end
        end
        return nil"
    ))
}

/// `KEYS[1]` the table; `ARGV` number, dead instance, reaper instance, lock ms. Extends the
/// caller's hold on a node it reaps; 0 when another survivor took it over.
fn extend_script() -> Script {
    Script::new(&format!(
        "{NOW}
        local found = redis.call('HGET', KEYS[1], ARGV[1])
        if not found then return 0 end
        local entry = cjson.decode(found)
        if entry.instance ~= ARGV[2] or entry.reaper ~= ARGV[3] then return 0 end
        entry.reap_until = now + tonumber(ARGV[4])
        redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(entry))
        return 1"
    ))
}

/// `KEYS[1]` the table; `ARGV` number, dead instance. Frees the number and leaves a tombstone
/// for a day.
fn bury_script() -> Script {
    Script::new(&format!(
        "{NOW}
        local found = redis.call('HGET', KEYS[1], ARGV[1])
        if found and cjson.decode(found).instance == ARGV[2] then
          redis.call('HDEL', KEYS[1], ARGV[1])
        end
        redis.call('HSET', KEYS[1], 'dead:' .. ARGV[2], now + 86400000)
        return 1"
    ))
}

/// `KEYS[1]` the table; `ARGV` number. 1 when that node's deadline has not passed.
fn alive_script() -> Script {
    Script::new(&format!(
        "{NOW}
        local found = redis.call('HGET', KEYS[1], ARGV[1])
        if found and cjson.decode(found).deadline >= now then return 1 end
        return 0"
    ))
}

/// What a heartbeat learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// Renewed.
    Renewed,
    /// The entry was gone (Redis restarted empty, or was flushed): the registry needs writing
    /// again.
    Restored,
    /// The cluster took this node for dead and reaped it.
    DeclaredDead,
}

/// The node table's scripts, loaded once.
#[derive(Debug)]
pub struct Table {
    key: String,
    claim: Script,
    heartbeat: Script,
    take_dead: Script,
    extend: Script,
    bury: Script,
    alive: Script,
}

impl Table {
    /// The table under `keys`.
    pub fn new(keys: &Keys) -> Self {
        Self {
            key: keys.nodes(),
            claim: claim_script(),
            heartbeat: heartbeat_script(),
            take_dead: take_dead_script(),
            extend: extend_script(),
            bury: bury_script(),
            alive: alive_script(),
        }
    }

    /// Takes a free number for `instance`.
    pub async fn claim(
        &self,
        store: &Store,
        instance: &str,
        name: &str,
        ttl_ms: u64,
    ) -> Result<u8, String> {
        let start = rand::random::<u8>() % 255;
        let mut invocation = self.claim.key(&self.key);
        invocation.arg(instance).arg(name).arg(ttl_ms).arg(start);
        let number: i64 = store.invoke(&invocation).await.map_err(|e| e.to_string())?;
        u8::try_from(number)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| "all 255 node numbers are taken".to_owned())
    }

    /// Renews node `number`'s deadline.
    pub async fn heartbeat(
        &self,
        store: &Store,
        number: u8,
        instance: &str,
        name: &str,
        ttl_ms: u64,
        connections: usize,
    ) -> redis::RedisResult<Beat> {
        let mut invocation = self.heartbeat.key(&self.key);
        invocation
            .arg(number)
            .arg(instance)
            .arg(name)
            .arg(ttl_ms)
            .arg(connections);
        Ok(match store.invoke::<i64>(&invocation).await? {
            0 => Beat::Renewed,
            1 => Beat::Restored,
            _ => Beat::DeclaredDead,
        })
    }

    /// Every node in the table, dead ones included, by number.
    pub async fn entries(&self, store: &Store) -> redis::RedisResult<Vec<NodeEntry>> {
        let all: Vec<(String, String)> = store.query(redis::cmd("HGETALL").arg(&self.key)).await?;
        Ok(all
            .into_iter()
            .filter_map(|(field, value)| {
                let number = field.parse::<u8>().ok()?;
                let mut entry: NodeEntry = serde_json::from_str(&value).ok()?;
                entry.number = number;
                Some(entry)
            })
            .collect())
    }

    /// Marks a dead node as reaped by `reaper`: its number and instance.
    pub async fn take_dead(
        &self,
        store: &Store,
        reaper: &str,
        lock_ms: u64,
    ) -> redis::RedisResult<Option<(u8, String)>> {
        let mut invocation = self.take_dead.key(&self.key);
        invocation.arg(reaper).arg(lock_ms);
        let taken: Option<(String, String)> = store.invoke(&invocation).await?;
        Ok(taken.and_then(|(field, instance)| Some((field.parse().ok()?, instance))))
    }

    /// Extends `reaper`'s hold on dead node `number`; false when another took it over.
    pub async fn extend(
        &self,
        store: &Store,
        number: u8,
        dead: &str,
        reaper: &str,
        lock_ms: u64,
    ) -> redis::RedisResult<bool> {
        let mut invocation = self.extend.key(&self.key);
        invocation.arg(number).arg(dead).arg(reaper).arg(lock_ms);
        Ok(store.invoke::<i64>(&invocation).await? == 1)
    }

    /// Frees a reaped node's number and leaves its tombstone.
    pub async fn bury(&self, store: &Store, number: u8, dead: &str) -> redis::RedisResult<()> {
        let mut invocation = self.bury.key(&self.key);
        invocation.arg(number).arg(dead);
        store.invoke::<i64>(&invocation).await.map(|_| ())
    }

    /// Whether node `number` renewed its deadline in time.
    pub async fn alive(&self, store: &Store, number: u8) -> redis::RedisResult<bool> {
        let mut invocation = self.alive.key(&self.key);
        invocation.arg(number);
        Ok(store.invoke::<i64>(&invocation).await? == 1)
    }

    /// Takes `number` out of the table: a node that stops cleanly.
    pub async fn leave(&self, store: &Store, number: u8) -> redis::RedisResult<()> {
        store
            .query(redis::cmd("HDEL").arg(&self.key).arg(number))
            .await
    }
}
