%% actor_bench.erl - the bench_actor shapes in Erlang/OTP, as the anchor.
%%
%% Same shapes as build/bin/bench_actor: one-way on one scheduler and across
%% two, ping-pong, 100-sender fan-in. Each message is {Seq, <<16 bytes>>},
%% the term equivalent of mx's msgpack body, and the receiver matches on it.
%% Prints JSON lines {"bench": "erlang.NAME", "value": X, "unit": U}, each
%% the median of Reps runs.
-module(actor_bench).
-export([main/1]).

-define(TAG, <<"0123456789abcdef">>).

main([NStr, RepsStr]) ->
    N = list_to_integer(NStr),
    Reps = list_to_integer(RepsStr),
    report("actor.oneway.same_scheduler", "msg/s",
           [oneway(N, 1, 1) || _ <- lists:seq(1, Reps)]),
    report("actor.oneway.cross_scheduler", "msg/s",
           [oneway(N, 1, 2) || _ <- lists:seq(1, Reps)]),
    report("actor.pingpong.same_scheduler", "round trips/s",
           [pingpong(N div 5, 1, 1) || _ <- lists:seq(1, Reps)]),
    report("actor.fanin.100", "msg/s",
           [fanin(N, 100) || _ <- lists:seq(1, Reps)]),
    halt(0).

report(Name, Unit, Values) ->
    Sorted = lists:sort(Values),
    Median = lists:nth((length(Sorted) + 1) div 2, Sorted),
    io:format("{\"bench\": \"erlang.~s\", \"value\": ~.6g, \"unit\": \"~s\"}~n",
              [Name, float(Median), Unit]).

now_s() -> erlang:monotonic_time(nanosecond) / 1.0e9.

receiver(0, Parent, Sum) -> Parent ! {done, now_s(), Sum};
receiver(K, Parent, Sum) ->
    receive {Seq, Tag} when is_integer(Seq), is_binary(Tag) ->
        receiver(K - 1, Parent, Sum + Seq + byte_size(Tag))
    end.

sender(_To, 0) -> ok;
sender(To, K) -> To ! {K, ?TAG}, sender(To, K - 1).

%% Sched: scheduler ids for receiver and sender (1 and 1, or 1 and 2).
oneway(N, RS, SS) ->
    Parent = self(),
    R = spawn_opt(fun() -> receiver(N, Parent, 0) end, [{scheduler, RS}]),
    Go = make_ref(),
    S = spawn_opt(fun() -> receive Go -> sender(R, N) end end, [{scheduler, SS}]),
    T0 = now_s(),
    S ! Go,
    receive {done, T1, _} -> N / (T1 - T0) end.

pp(_Peer, Parent, Rounds, Seq) when Seq >= 2 * Rounds -> Parent ! {done, now_s(), Seq};
pp(Peer, Parent, Rounds, _) ->
    receive {Seq, Tag} when is_integer(Seq), is_binary(Tag) ->
        if Seq >= 2 * Rounds -> Parent ! {done, now_s(), Seq};
           true -> Peer ! {Seq + 1, Tag}, pp(Peer, Parent, Rounds, Seq)
        end
    end.

pingpong(Rounds, SA, SB) ->
    Parent = self(),
    A = spawn_opt(fun() -> receive {peer, P} -> pp(P, Parent, Rounds, 0) end end,
                  [{scheduler, SA}]),
    B = spawn_opt(fun() -> receive {peer, P} -> pp(P, Parent, Rounds, 0) end end,
                  [{scheduler, SB}]),
    A ! {peer, B},
    B ! {peer, A},
    T0 = now_s(),
    A ! {1, ?TAG},
    receive {done, T1, _} -> Rounds / (T1 - T0) end.

fanin(N, Senders) ->
    Parent = self(),
    R = spawn_opt(fun() -> receiver(N, Parent, 0) end, [{scheduler, 1}]),
    Go = make_ref(),
    Per = N div Senders,
    Ss = [spawn_opt(fun() -> receive Go -> sender(R, Per + extra(I, N, Senders)) end end,
                    [{scheduler, 2}]) || I <- lists:seq(1, Senders)],
    T0 = now_s(),
    [S ! Go || S <- Ss],
    receive {done, T1, _} -> N / (T1 - T0) end.

extra(1, N, Senders) -> N rem Senders;
extra(_, _, _) -> 0.
