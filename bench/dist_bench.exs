# bench/dist_bench.exs — the Elixir half of bench/dist.sh (`make bench-dist`).
#
#   elixir --sname beam@localhost --cookie C bench/dist_bench.exs server LIFETIME_S
#       a GenServer counter registered as :counter, the BEAM-to-BEAM
#       comparison; the node halts when its client node goes down or after
#       LIFETIME_S, whichever comes first (dist.sh also stops it by PID)
#
#   elixir --sname client@localhost --cookie C bench/dist_bench.exs client \
#       GSD_NODE GSD_PID BEAM_NODE BEAM_PID ROUNDS SECS WARM "1 50" CLK_TCK
#       ROUNDS rounds; in each, for each number of callers, gsd's counter
#       then the BEAM's (A B A B: drift cancels). A run: that many
#       processes call GenServer.call(dest, :get) in a loop, WARM s of
#       warm-up, then SECS s measured. One line per run on stdout:
#         tsv target callers round calls secs calls_per_s p50_us p99_us cpu_us_per_call
#             client_cpus
#       (cpu: the server OS process's utime + stime over the measured
#       window, from /proc, over the calls measured; client_cpus: the
#       client node's own utime + stime over the window, in CPUs).
#
# Latencies go into one log-bucketed histogram per run (:counters, 32
# buckets per power of two, about 3% wide), not into lists.

defmodule DistBench.Counter do
  use GenServer
  def init(n), do: {:ok, n}
  def handle_call(:get, _from, n), do: {:reply, n, n}
  def handle_call(:increment, _from, n), do: {:reply, n + 1, n + 1}
  def handle_cast(:increment, n), do: {:noreply, n + 1}
end

defmodule DistBench do
  import Bitwise

  @sub 32
  @linear 2 * @sub
  @size @linear + 40 * @sub

  # Exact below 64 ns, then 32 buckets per power of two.
  def bucket(ns) when ns < @linear, do: max(ns, 0)

  def bucket(ns) do
    e = msb(ns)
    min(@linear + (e - 6) * @sub + (ns >>> (e - 5) &&& @sub - 1), @size - 1)
  end

  defp msb(n), do: msb(n, 0)
  defp msb(1, e), do: e
  defp msb(n, e), do: msb(n >>> 1, e + 1)

  # The middle of bucket i, in ns.
  def mid(i) when i < @linear, do: i

  def mid(i) do
    e = div(i - @linear, @sub) + 6
    s = rem(i - @linear, @sub)
    ((@sub + s) <<< (e - 5)) + (1 <<< (e - 6))
  end

  def percentile_us(hist, total, p) do
    want = max(1, ceil(total * p))

    Enum.reduce_while(0..(@size - 1), 0, fn i, acc ->
      acc = acc + :counters.get(hist, i + 1)
      if acc >= want, do: {:halt, {:at, i}}, else: {:cont, acc}
    end)
    |> case do
      {:at, i} -> mid(i) / 1000
      _ -> 0.0
    end
  end

  def cpu_ticks(pid) do
    [_, rest] = String.split(File.read!("/proc/#{pid}/stat"), ") ", parts: 2)
    f = String.split(rest, " ")
    String.to_integer(Enum.at(f, 11)) + String.to_integer(Enum.at(f, 12))
  end

  # 0: warm-up, 1: measured, 2: stop
  defp loop(dest, hist, phase) do
    case :atomics.get(phase, 1) do
      2 ->
        :ok

      ph ->
        t0 = :erlang.monotonic_time(:nanosecond)
        _ = GenServer.call(dest, :get)
        t1 = :erlang.monotonic_time(:nanosecond)

        if ph == 1 and :atomics.get(phase, 1) == 1,
          do: :counters.add(hist, bucket(t1 - t0) + 1, 1)

        loop(dest, hist, phase)
    end
  end

  def run(dest, os_pid, callers, secs, warm, tick) do
    hist = :counters.new(@size, [:write_concurrency])
    phase = :atomics.new(1, [])
    me = self()

    pids =
      for _ <- 1..callers do
        spawn_link(fn ->
          loop(dest, hist, phase)
          send(me, {:done, self()})
        end)
      end

    Process.sleep(round(warm * 1000))
    c0 = cpu_ticks(os_pid)
    m0 = cpu_ticks(System.pid())
    t0 = :erlang.monotonic_time(:nanosecond)
    :atomics.put(phase, 1, 1)
    Process.sleep(round(secs * 1000))
    :atomics.put(phase, 1, 2)
    t1 = :erlang.monotonic_time(:nanosecond)
    c1 = cpu_ticks(os_pid)
    m1 = cpu_ticks(System.pid())
    for p <- pids, do: receive(do: ({:done, ^p} -> :ok))

    n = Enum.reduce(1..@size, 0, fn i, acc -> acc + :counters.get(hist, i) end)
    s = (t1 - t0) / 1.0e9
    cpu = if n > 0, do: (c1 - c0) * 1.0e6 / tick / n, else: 0.0
    {n, s, percentile_us(hist, n, 0.50), percentile_us(hist, n, 0.99), cpu, (m1 - m0) / tick / s}
  end

  # Until the node answers a call (the BEAM node may still be starting).
  def await(dest, tries \\ 200) do
    try do
      GenServer.call(dest, :get, 1000)
      :ok
    catch
      :exit, reason ->
        if tries == 0 do
          IO.puts(:stderr, "dist_bench: #{inspect(dest)} does not answer: #{inspect(reason)}")
          System.halt(1)
        end

        Process.sleep(100)
        await(dest, tries - 1)
    end
  end
end

case System.argv() do
  ["server", lifetime] ->
    {:ok, _} = GenServer.start(DistBench.Counter, 0, name: :counter)
    :ok = :net_kernel.monitor_nodes(true)
    lifetime_ms = String.to_integer(lifetime) * 1000

    # Halts once the client has been and gone, or at the end of its lifetime.
    wait = fn wait, seen ->
      receive do
        {:nodeup, _} -> wait.(wait, true)
        {:nodedown, _} -> if seen and Node.list() == [], do: :ok, else: wait.(wait, seen)
      after
        lifetime_ms -> :ok
      end
    end

    wait.(wait, false)
    System.halt(0)

  ["client", gsd, gsd_pid, beam, beam_pid, rounds, secs, warm, callers, tick] ->
    targets = [
      {"gsd", {:counter, String.to_atom(gsd)}, gsd_pid},
      {"beam", {:counter, String.to_atom(beam)}, beam_pid}
    ]

    for {_, dest, _} <- targets, do: DistBench.await(dest)
    {secs, _} = Float.parse(secs)
    {warm, _} = Float.parse(warm)
    tick = String.to_integer(tick)
    callers = callers |> String.split() |> Enum.map(&String.to_integer/1)

    for r <- 1..String.to_integer(rounds), c <- callers, {name, dest, os_pid} <- targets do
      {n, s, p50, p99, cpu, mine} = DistBench.run(dest, os_pid, c, secs, warm, tick)

      IO.puts(
        Enum.join(
          [
            "tsv",
            name,
            c,
            r,
            n,
            Float.round(s, 6),
            round(n / s),
            Float.round(p50, 1),
            Float.round(p99, 1),
            Float.round(cpu, 3),
            Float.round(mine, 3)
          ],
          "\t"
        )
      )
    end

  _ ->
    IO.puts(:stderr, "usage: see the header of bench/dist_bench.exs")
    System.halt(2)
end
