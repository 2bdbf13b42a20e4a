/* users.c — who is connected here: users online (this instance's part of
 * presence, all service threads together) and the connections subscribed
 * to each topic. Any thread. */
#include <inttypes.h>
#include <stdlib.h>

#include "conn.h"

void omsd_users_add(omsd *d, int64_t user_id, int delta)
{
    if (!user_id)
        return;
    char k[32];
    snprintf(k, sizeof k, "%" PRId64, user_id);
    pthread_mutex_lock(&d->users_lock);
    json_t *n = json_object_get(d->users, k);
    json_int_t v = (n ? json_integer_value(n) : 0) + delta;
    if (v > 0)
        json_object_set_new(d->users, k, json_integer(v));
    else
        json_object_del(d->users, k);
    pthread_mutex_unlock(&d->users_lock);
}

void omsd_local_users(omsd *d, json_t *byuser)
{
    pthread_mutex_lock(&d->users_lock);
    const char *k;
    json_t *v;
    json_object_foreach(d->users, k, v)
    {
        json_t *n = json_object_get(byuser, k);
        json_object_set_new(byuser, k,
                            json_integer((n ? json_integer_value(n) : 0) + json_integer_value(v)));
    }
    pthread_mutex_unlock(&d->users_lock);
}

/* Users online across the cluster: this instance's connections plus the
 * other live instances' (presence.c). */
json_t *omsd_users_online(omsd *d)
{
    json_t *byuser = json_object();
    omsd_local_users(d, byuser);
    omsd_presence_merge(d, byuser);
    json_t *users = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(byuser, k, v)
    {
        json_array_append_new(users, json_pack("{s:I,s:O}", "userId",
                                               (json_int_t)strtoll(k, NULL, 10), "connections", v));
    }
    json_decref(byuser);
    return users;
}

int omsd_user_connections(omsd *d, int64_t user_id)
{
    json_t *byuser = json_object();
    omsd_local_users(d, byuser);
    omsd_presence_merge(d, byuser);
    char k[32];
    snprintf(k, sizeof k, "%" PRId64, user_id);
    int n = (int)json_integer_value(json_object_get(byuser, k));
    json_decref(byuser);
    return n;
}

void omsd_subs_count(omsd *d, unsigned old_subs, unsigned new_subs)
{
    static const unsigned bits[2] = {OMS_SUB_ORDERS, OMS_SUB_INVENTORY};
    for (int i = 0; i < 2; i++) {
        if ((old_subs & bits[i]) && !(new_subs & bits[i]))
            atomic_fetch_sub(&d->subscribed[i], 1);
        else if (!(old_subs & bits[i]) && (new_subs & bits[i]))
            atomic_fetch_add(&d->subscribed[i], 1);
    }
}

size_t omsd_subscribed(omsd *d, unsigned sub)
{
    return atomic_load(&d->subscribed[sub == OMS_SUB_ORDERS ? 0 : 1]);
}
