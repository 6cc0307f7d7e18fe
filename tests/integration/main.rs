mod app_chaos;
mod app_counting;
mod app_lifecycle;
mod app_redis_outage;
mod app_util;
mod harness;
mod smoke;
