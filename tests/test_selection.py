"""Object selections (``ringcert.selection``): validation, the written form, the CLI's
``--perturb`` / ``--target`` defaults, relation matrices and the parsers."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ringcert.errors import RingcertError
from ringcert.selection import Selection, parse_indices, parse_target, relation_selections
from ringcert.vocabulary import Side


@pytest.mark.parametrize(("perturbed", "targets", "message"), [
    ((), (1,), "the perturbed set is empty"),
    ((0,), (), "the target set is empty"),
    ((), (), "the perturbed set is empty"),
    ((0, 1), (1, 2), "target object 1 is inside the perturbed set"),
    ((3, 2), (0, 2, 3), "target object 2 is inside the perturbed set"),
    ((-1,), (0,), "object indices must be non-negative"),
    ((0,), (1, -2), "object indices must be non-negative"),
])
def test_invalid_selections_are_one_line_errors(perturbed, targets, message):
    with pytest.raises(RingcertError) as caught:
        Selection(perturbed=perturbed, targets=targets)
    assert str(caught.value) == message
    assert "\n" not in str(caught.value)


def test_indices_are_sorted_and_deduplicated():
    selection = Selection(perturbed=(2, 0, 2), targets=(3, 1, 3))
    assert selection.perturbed == (0, 2)
    assert selection.targets == (1, 3)
    assert selection == Selection(perturbed=(0, 2), targets=(1, 3))
    assert selection.value == "p0+2-t1+3"


disjoint = st.lists(st.integers(0, 12), min_size=2, max_size=8, unique=True).flatmap(
    lambda values: st.integers(1, len(values) - 1).map(
        lambda cut: (tuple(values[:cut]), tuple(values[cut:]))))


@given(disjoint)
@settings(max_examples=100, deadline=None)
def test_the_written_form_round_trips(parts):
    perturbed, targets = parts
    selection = Selection(perturbed=perturbed, targets=targets)
    assert selection.value == (f"p{'+'.join(map(str, sorted(perturbed)))}"
                               f"-t{'+'.join(map(str, sorted(targets)))}")
    again = Selection.of(selection.value)
    assert again == selection
    assert again.value == selection.value
    assert Selection.of(selection) is selection
    assert parse_target(selection.value) == selection


def test_sides_are_the_two_object_selections():
    right, left = Selection.of(Side.RIGHT), Selection.of(Side.LEFT)
    assert (right.perturbed, right.targets) == ((0,), (1,))
    assert (left.perturbed, left.targets) == ((1,), (0,))
    assert Selection.of("right") == right and Selection.of("left") == left
    assert right.side is Side.RIGHT and left.side is Side.LEFT
    for side in Side:
        assert Selection.of(side).side is side
        assert Selection.of(Selection.of(side).value).side is side  # "p0-t1" is the right side
    assert right.value == "p0-t1" and left.value == "p1-t0"


@pytest.mark.parametrize("value", ["p0-t1+2", "p0+1-t2", "p2-t0", "p1-t2", "p0-t2"])
def test_other_selections_have_no_side(value):
    assert Selection.of(value).side is None


@pytest.mark.parametrize("value", ["both", "", "p0", "p0-t", "p-t1", "P0-T1", "p0-t1,2", "p-1-t0",
                                   "p0-t1 ", "0-1", "p0+-t1"])
def test_malformed_written_forms_are_rejected(value):
    with pytest.raises(RingcertError, match=r"target must be left, right or p<i>-t<j>"):
        Selection.of(value)


def test_a_written_form_that_overlaps_is_rejected():
    with pytest.raises(RingcertError, match="target object 1 is inside the perturbed set"):
        Selection.of("p0+1-t1+2")


@pytest.mark.parametrize(("perturb", "target", "objects", "perturbed", "targets"), [
    (None, None, 2, (0,), (1,)),
    (None, None, 3, (0,), (1, 2)),
    (None, None, 5, (0,), (1, 2, 3, 4)),
    (None, [2], 3, (0, 1), (2,)),
    (None, [1, 3], 4, (0, 2), (1, 3)),
    (None, [0], 3, (1, 2), (0,)),
    ([1], None, 3, (1,), (0, 2)),
    ([0, 2], None, 4, (0, 2), (1, 3)),
    ([2], [0], 3, (2,), (0,)),
    ([0], [2], 4, (0,), (2,)),
])
def test_choose_fills_the_missing_side_with_the_complement(perturb, target, objects, perturbed, targets):
    selection = Selection.choose(perturb=perturb, target=target, objects=objects)
    assert (selection.perturbed, selection.targets) == (perturbed, targets)
    selection.check(objects)  # every chosen index names an object


def test_choose_on_two_objects_gives_the_sides():
    assert Selection.choose(perturb=None, target=None, objects=2).side is Side.RIGHT
    assert Selection.choose(perturb=None, target=[0], objects=2).side is Side.LEFT
    assert Selection.choose(perturb=[1], target=None, objects=2).side is Side.LEFT


@pytest.mark.parametrize(("perturb", "target", "objects", "message"), [
    ([3], None, 3, "--perturb object 3 is out of range 0..2"),
    ([-1], None, 3, "--perturb object -1 is out of range 0..2"),
    (None, [2], 2, "--target object 2 is out of range 0..1"),
    (None, [-1], 4, "--target object -1 is out of range 0..3"),
    ([0], [5], 3, "--target object 5 is out of range 0..2"),
    ([7], [5], 3, "--perturb object 7 is out of range 0..2"),
])
def test_choose_rejects_indices_out_of_range(perturb, target, objects, message):
    with pytest.raises(RingcertError) as caught:
        Selection.choose(perturb=perturb, target=target, objects=objects)
    assert str(caught.value) == message


@pytest.mark.parametrize(("perturb", "target", "objects", "message"), [
    ([0, 1], None, 2, "the target set is empty"),
    (None, [0, 1, 2], 3, "the perturbed set is empty"),
    ([1], [1], 3, "target object 1 is inside the perturbed set"),
    ([0, 2], [2, 1], 3, "target object 2 is inside the perturbed set"),
])
def test_choose_rejects_empty_or_overlapping_sets(perturb, target, objects, message):
    with pytest.raises(RingcertError, match=message):
        Selection.choose(perturb=perturb, target=target, objects=objects)


def test_check_names_the_first_index_out_of_range():
    Selection.of("p0-t1+2").check(3)
    with pytest.raises(RingcertError) as caught:
        Selection.of("p0-t1+2").check(2)
    assert str(caught.value) == "object 2 is out of range 0..1 (the images have 2 objects)"
    with pytest.raises(RingcertError, match=r"object 4 is out of range 0\.\.3"):
        Selection.of("p4-t0").check(4)


@pytest.mark.parametrize("objects", [2, 3, 4, 5])
def test_relation_selections_are_the_ordered_pairs_then_one_against_the_rest(objects):
    chosen = relation_selections(objects)
    pairs = {((i,), (j,)) for i, j in itertools.permutations(range(objects), 2)}
    rest = {((i,), tuple(j for j in range(objects) if j != i)) for i in range(objects)}
    as_tuples = [(one.perturbed, one.targets) for one in chosen]
    assert len(set(as_tuples)) == len(as_tuples)  # no selection twice
    assert set(as_tuples) == pairs | rest
    count = len(pairs)
    assert set(as_tuples[:count]) == pairs  # the pairs come first
    assert len(chosen) == (count if objects == 2 else count + objects)


def test_relation_selections_of_three_and_two_objects():
    assert [one.value for one in relation_selections(3)] == [
        "p0-t1", "p0-t2", "p1-t0", "p1-t2", "p2-t0", "p2-t1", "p0-t1+2", "p1-t0+2", "p2-t0+1"]
    assert relation_selections(2) == [Selection.of(Side.RIGHT), Selection.of(Side.LEFT)]


def test_parse_target_keeps_sides_and_reads_selections():
    assert parse_target("left") is Side.LEFT
    assert parse_target("right") is Side.RIGHT
    assert parse_target(Side.LEFT) is Side.LEFT
    selection = Selection(perturbed=(1,), targets=(0, 2))
    assert parse_target(selection) is selection
    assert parse_target("p1-t0+2") == selection
    assert isinstance(parse_target("p0-t1"), Selection)  # the written form is not turned into a side


@pytest.mark.parametrize(("value", "message"), [
    ("both", "target must be left, right or p<i>-t<j>"),
    ("LEFT", "target must be left, right or p<i>-t<j>"),
    ("p1-t1", "target object 1 is inside the perturbed set"),
])
def test_parse_target_rejects_anything_else(value, message):
    with pytest.raises(RingcertError, match=message.replace(".", r"\.")):
        parse_target(value)


@pytest.mark.parametrize(("text", "values"), [("0", (0,)), ("2,0", (2, 0)), ("1,3,5", (1, 3, 5)),
                                              ("1, 2", (1, 2))])
def test_parse_indices_reads_comma_separated_integers(text, values):
    assert parse_indices(text) == values


def test_parse_indices_names_an_empty_list():
    for text in ("", "  "):
        with pytest.raises(RingcertError, match=r"^an empty object index list$"):
            parse_indices(text)


@pytest.mark.parametrize("text", ["a", "1,", ",1", "1,,2", "1;2", "1.5", "0 1"])
def test_parse_indices_rejects_anything_else(text):
    with pytest.raises(RingcertError) as caught:
        parse_indices(text)
    assert str(caught.value) == f"object indices must be comma-separated integers, got {text!r}"
